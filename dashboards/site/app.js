// Draws a dashboards page (agent-loader dashboards build; docs/dashboards.md) from its data
// file: every element with data-component, in the formats below. Charts are echarts', copied
// into the site with this file, so the page fetches nothing but its own files.
"use strict";

const page = JSON.parse(document.getElementById("aa-page").textContent);
const inputs = {};
const charts = new Map();
let data = {};

function numberFormat(options) {
  const format = new Intl.NumberFormat("en-US", options);
  return (value) => format.format(value);
}

function fixed(digits, extra = {}) {
  return numberFormat({ minimumFractionDigits: digits, maximumFractionDigits: digits, ...extra });
}

// Named formats (Evidence's names) and Excel-like patterns such as '#,##0.0" s"'.
const FORMATS = {
  num0: fixed(0),
  num1: fixed(1),
  num2: fixed(2),
  usd2: fixed(2, { style: "currency", currency: "USD" }),
  usd4: fixed(4, { style: "currency", currency: "USD" }),
  pct0: fixed(0, { style: "percent" }),
  pct1: fixed(1, { style: "percent" }),
  "yyyy-mm-dd hh:mm": (value) => String(value).slice(0, 16).replace("T", " "),
  "yyyy-mm-dd": (value) => String(value).slice(0, 10),
  "yyyy-mm": (value) => String(value).slice(0, 7),
};
const PATTERN = /^#,##0(?:\.(0+))?(?:"([^"]*)")?$/;

function formatter(fmt) {
  if (!fmt) return plain;
  if (FORMATS[fmt]) return FORMATS[fmt];
  const pattern = PATTERN.exec(fmt);
  if (pattern) {
    const number = fixed((pattern[1] || "").length);
    return (value) => number(value) + (pattern[2] || "");
  }
  console.error(`unknown format ${fmt}`);
  return plain;
}

function plain(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number") return fixed(0, { maximumFractionDigits: 2 })(value);
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) {
    return value.endsWith("T00:00:00+00:00") ? value.slice(0, 10) : FORMATS["yyyy-mm-dd hh:mm"](value);
  }
  return String(value);
}

function format(value, fmt) {
  return value === null || value === undefined ? "–" : formatter(fmt)(value);
}

// The rows of a query as objects, keeping those its drop-downs select.
function rows(name) {
  const result = data[name];
  if (!result) throw new Error(`no query ${name} on this page`);
  const filters = page.filters[name] || [];
  return result.rows
    .map((row) => Object.fromEntries(result.columns.map((column, i) => [column, row[i]])))
    .filter((row) => filters.every(([column, input]) => row[column] === inputs[input]));
}

function unique(values) {
  return [...new Set(values)];
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const draw = {
  Value(node, props) {
    const [row] = rows(props.data);
    node.textContent = format(row ? row[props.column] : null, props.fmt);
  },

  BigValue(node, props) {
    const [row] = rows(props.data);
    node.replaceChildren(
      element("div", "title", props.title || props.value),
      element("div", "figure", format(row ? row[props.value] : null, props.fmt)),
    );
    node.dataset.title = props.title || props.value;
  },

  Dropdown(node, props) {
    const options = unique(rows(props.data).map((row) => row[props.value]));
    if (!(props.name in inputs)) inputs[props.name] = options[0];
    const select = element("select");
    for (const option of options) {
      const item = element("option", "", String(option));
      item.selected = option === inputs[props.name];
      select.append(item);
    }
    select.addEventListener("change", () => {
      inputs[props.name] = options[select.selectedIndex];
      render();
    });
    const label = element("label", "", props.title || props.name);
    label.append(select);
    node.replaceChildren(label);
  },

  DataTable(node, props) {
    const found = rows(props.data);
    if (!found.length) {
      node.replaceChildren(element("p", "empty", props.emptyMessage || "No rows."));
      return;
    }
    const columns = props.columns.length
      ? props.columns
      : data[props.data].columns.map((id) => ({ id }));
    const table = element("table");
    const head = table.createTHead().insertRow();
    const numeric = columns.map((column) => found.some((row) => typeof row[column.id] === "number"));
    columns.forEach((column, i) => {
      head.append(element("th", numeric[i] ? "number" : "", column.title || column.id.replaceAll("_", " ")));
    });
    const body = table.createTBody();
    for (const row of found) {
      const line = body.insertRow();
      columns.forEach((column, i) => {
        line.append(element("td", numeric[i] ? "number" : "", format(row[column.id], column.fmt)));
      });
    }
    node.replaceChildren(table);
  },

  LineChart(node, props) {
    chart(node, props, "line");
  },

  BarChart(node, props) {
    chart(node, props, "bar");
  },

  Heatmap(node, props) {
    const found = rows(props.data);
    const xs = unique(found.map((row) => plain(row[props.x])));
    const ys = unique(found.map((row) => plain(row[props.y])));
    const values = found.map((row) => [xs.indexOf(plain(row[props.x])), ys.indexOf(plain(row[props.y])), row[props.value]]);
    const valueFormat = (value) => format(value, props.valueFmt);
    plot(node, props, found.length, Math.max(240, 28 * ys.length + 80), {
      tooltip: { valueFormatter: valueFormat },
      grid: { containLabel: true, left: 10, right: 20, top: 10, bottom: 50 },
      xAxis: { type: "category", data: xs, name: props.x.replaceAll("_", " "), nameLocation: "middle", nameGap: 25 },
      yAxis: { type: "category", data: ys, inverse: true },
      visualMap: { min: 0, max: Math.max(1e-9, ...values.map((value) => value[2] || 0)), show: false, inRange: { color: ["#e3f2fd", "#0d47a1"] } },
      series: [{ type: "heatmap", data: values, label: { show: true, formatter: (item) => valueFormat(item.value[2]) } }],
    });
  },
};

// One series per y column, or per value of the series column.
function seriesOf(props, found) {
  const ys = Array.isArray(props.y) ? props.y : [props.y];
  const xs = unique(found.map((row) => plain(row[props.x])));
  if (!props.series) {
    return { xs, series: ys.map((y) => ({ name: y, values: xs.map((x) => found.find((row) => plain(row[props.x]) === x)[y]) })) };
  }
  const names = unique(found.map((row) => String(row[props.series])));
  const value = (x, name) => {
    const row = found.find((item) => plain(item[props.x]) === x && String(item[props.series]) === name);
    return row ? row[ys[0]] : null;
  };
  return { xs, series: names.map((name) => ({ name, values: xs.map((x) => value(x, name)) })) };
}

function chart(node, props, type) {
  const found = rows(props.data);
  const { xs, series } = seriesOf(props, found);
  const valueFormat = (value) => format(value, props.yFmt);
  const swap = props.swapXY === "true";
  const stacked = type === "bar" && props.series && props.type !== "grouped";
  const category = { type: "category", data: xs, inverse: swap };
  const value = { type: "value", axisLabel: { formatter: valueFormat } };
  plot(node, props, found.length, swap ? Math.max(240, 26 * xs.length * (stacked ? 1 : series.length) + 80) : 320, {
    tooltip: { trigger: "axis", valueFormatter: valueFormat },
    legend: series.length > 1 ? { top: 0 } : undefined,
    grid: { containLabel: true, left: 10, right: 30, top: series.length > 1 ? 35 : 15, bottom: 10 },
    xAxis: swap ? value : category,
    yAxis: swap ? category : value,
    series: series.map((item) => ({ type, name: item.name, data: item.values, stack: stacked ? "all" : undefined, showSymbol: xs.length < 60 })),
  });
}

function plot(node, props, count, height, option) {
  if (!node.firstChild) {
    if (props.title) node.append(element("div", "chart-title", props.title));
    node.append(element("div", "chart"), element("p", "empty", props.emptyMessage || "No data."));
  }
  const box = node.querySelector(".chart");
  node.querySelector(".empty").hidden = count > 0;
  box.hidden = count === 0;
  if (!count) return;
  box.style.height = `${height}px`;
  if (!charts.has(node)) charts.set(node, echarts.init(box, null, { renderer: "svg" }));
  charts.get(node).resize();
  charts.get(node).setOption({ animation: false, ...option }, true);
}

function render() {
  const nodes = [...document.querySelectorAll("[data-component]")];
  const dropdowns = nodes.filter((node) => node.dataset.component === "Dropdown");
  for (const node of [...dropdowns, ...nodes.filter((node) => !dropdowns.includes(node))]) {
    draw[node.dataset.component](node, JSON.parse(node.dataset.props));
  }
}

fetch(page.data)
  .then((response) => {
    if (!response.ok) throw new Error(`${page.data}: HTTP ${response.status}`);
    return response.json();
  })
  .then((loaded) => {
    data = loaded;
    render();
    window.addEventListener("resize", () => charts.forEach((instance) => instance.resize()));
    document.body.dataset.ready = "true";
  })
  .catch((error) => console.error(error));
