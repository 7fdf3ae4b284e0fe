"""Read a dashboards page (dashboards/pages/*.md): Markdown, SQL blocks and a few components.

A page is Markdown with an optional front matter (`title:`), fenced ```sql NAME blocks and the
components listed in COMPONENTS, written as in Evidence (`<BigValue data={totals} value=gmv_usd
fmt=usd2 />`). The build runs each SQL block in PostgreSQL as the site's login, `warehouse.X`
naming the query sources/warehouse/X.sql; the browser draws the components from the results
(dashboards/site/app.js). A predicate `column = '${inputs.NAME.value}'` is the one place a
query reads an input: the build runs the query without it and the browser keeps the rows whose
`column` equals the drop-down NAME's choice.
"""

from __future__ import annotations

import ast
import html
import json
import re
from dataclasses import dataclass

from loader.errors import DashboardsBuildFailed

COMPONENTS = {
    "Value": {"data", "column", "fmt"},
    "BigValue": {"data", "value", "title", "fmt"},
    "LineChart": {"data", "x", "y", "series", "yFmt", "title", "emptySet"},
    "BarChart": {"data", "x", "y", "series", "yFmt", "title", "swapXY", "type", "emptySet"},
    "Heatmap": {"data", "x", "y", "value", "valueFmt"},
    "DataTable": {"data", "emptySet", "emptyMessage"},
    "Column": {"id", "title", "fmt"},
    "Dropdown": {"data", "name", "value", "title"},
}
"""Each component the renderer draws and the attributes it accepts (docs/dashboards.md)."""

FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
SQL_BLOCK = re.compile(r"^```sql (\w+)\n(.*?)^```\n", re.S | re.M)
ATTRIBUTE = re.compile(r"""(\w+)=(?:\{([^}]*)\}|"([^"]*)"|'([^']*)'|([^\s/>]+))""")
TAG = re.compile(r"<(\w+)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)/>", re.S)
TABLE = re.compile(r"<DataTable((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>(.*?)</DataTable>", re.S)
INPUT = re.compile(r"(\w+)\s*=\s*'?\$\{inputs\.(\w+)\.value\}'?")
SOURCE = re.compile(r"\bwarehouse\.(\w+)\b")


@dataclass
class Query:
    """A page's SQL block: its text for PostgreSQL, the sources it reads and its input filters
    (column, drop-down name) applied in the browser."""

    sql: str
    sources: list[str]
    filters: list[tuple[str, str]]


@dataclass
class Page:
    title: str
    queries: dict[str, Query]
    body: str
    """HTML; each component is an element with data-component and data-props (JSON)."""


def parse_query(text: str) -> Query:
    filters = [(column, name) for column, name in INPUT.findall(text)]
    sql = INPUT.sub("true", text)
    return Query(sql, sorted(set(SOURCE.findall(sql))), filters)


def attributes(page: str, component: str, text: str) -> dict:
    """The attributes of one component tag; DashboardsBuildFailed on an unknown component or
    attribute."""
    if component not in COMPONENTS:
        raise DashboardsBuildFailed(f"{page}: unknown component <{component}>")
    props: dict = {}
    for name, braced, double, single, bare in ATTRIBUTE.findall(text):
        if name not in COMPONENTS[component]:
            raise DashboardsBuildFailed(f"{page}: <{component}> has no attribute {name}")
        if braced:
            value = braced.strip()
            props[name] = ast.literal_eval(value) if value.startswith("[") else value
        else:
            props[name] = double or single or bare
    return props


def element(component: str, props: dict, inline: bool = False) -> str:
    tag = "span" if inline else "div"
    data = html.escape(json.dumps(props), quote=True)
    kind = component.lower()
    return f'<{tag} class="aa-{kind}" data-component="{component}" data-props="{data}"></{tag}>'


def table(page: str, match: re.Match[str]) -> str:
    props = attributes(page, "DataTable", match.group(1))
    props["columns"] = [
        attributes(page, "Column", tag.group(2))
        for tag in TAG.finditer(match.group(2))
        if tag.group(1) == "Column"
    ]
    return element("DataTable", props)


def inline(page: str, text: str) -> str:
    """A paragraph's text with its tags (Value) made elements and the rest escaped."""
    parts, position = [], 0
    for tag in TAG.finditer(text):
        parts.append(html.escape(text[position : tag.start()]))
        component = tag.group(1)
        props = attributes(page, component, tag.group(2))
        parts.append(element(component, props, inline=True))
        position = tag.end()
    parts.append(html.escape(text[position:]))
    return "".join(parts)


def tags(page: str, text: str) -> list[str]:
    """The components of `text`, which holds nothing else."""
    parts, position = [], 0
    for tag in TAG.finditer(text):
        parts.append(text[position : tag.start()])
        component = tag.group(1)
        parts.append(element(component, attributes(page, component, tag.group(2))))
        position = tag.end()
    parts.append(text[position:])
    stray = "".join(parts[0::2]).strip()
    if stray:
        raise DashboardsBuildFailed(f"{page}: text among components: {stray[:60]!r}")
    return parts[1::2]


def components(page: str, text: str) -> str:
    """A block of components (tables with their columns, the others one tag each) as a row."""
    parts, position = [], 0
    for match in TABLE.finditer(text):
        parts.extend(tags(page, text[position : match.start()]))
        parts.append(table(page, match))
        position = match.end()
    parts.extend(tags(page, text[position:]))
    return '<div class="aa-row">' + "".join(parts) + "</div>"


def block(page: str, text: str) -> str:
    """One blank-line separated block as HTML: a heading, components or a paragraph."""
    heading = re.match(r"(#{1,4}) (.*)", text)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{html.escape(heading.group(2))}</h{level}>"
    if text.startswith("<") and not text.startswith("<Value"):
        return components(page, text)
    return f"<p>{inline(page, text)}</p>"


def parse(name: str, text: str) -> Page:
    """The page in file `name` with Markdown `text`."""
    title = name.removesuffix(".md")
    front = FRONT_MATTER.match(text)
    if front:
        for line in front.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "title":
                title = value.strip()
        text = text[front.end() :]
    queries = {match.group(1): parse_query(match.group(2)) for match in SQL_BLOCK.finditer(text)}
    text = SQL_BLOCK.sub("", text)
    blocks = [part.strip() for part in re.split(r"\n\s*\n", text) if part.strip()]
    return Page(title, queries, "\n".join(block(name, part) for part in blocks))
