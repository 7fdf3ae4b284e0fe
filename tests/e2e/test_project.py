"""The dbt project as a whole: it builds on empty raw tables, and it is fully documented."""

from __future__ import annotations

import json


def test_build_on_empty_raw_tables_then_docs_cover_every_model_and_column(dbt, module_db):
    dbt("build")
    dbt("docs", "generate")
    manifest = json.loads((dbt.target_dir / "manifest.json").read_text())
    catalog = json.loads((dbt.target_dir / "catalog.json").read_text())

    models = {
        node_id: node
        for node_id, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "snapshot", "seed")
    }
    assert models, "no models in the manifest"
    undocumented = [node_id for node_id, node in models.items() if not node["description"]]
    assert undocumented == []

    missing = []
    for node_id, node in models.items():
        built = catalog["nodes"].get(node_id)
        assert built is not None, f"{node_id} is not in the catalog"
        for column in built["columns"]:
            documented = node["columns"].get(column, {}).get("description")
            if not documented:
                missing.append(f"{node['name']}.{column}")
    assert missing == []

    schemas = {node["schema"] for node in models.values() if node["resource_type"] == "model"}
    assert schemas == {"staging", "intermediate", "marts"}
    marts = [node for node in models.values() if node["schema"] == "marts"]
    assert all(
        node["config"]["contract"]["enforced"] for node in marts if node["resource_type"] == "model"
    )

    # persist_docs: the database carries the same descriptions (what `\\d+` and BI tools show).
    undescribed = module_db.query(
        """
        select c.relname, a.attname
        from pg_class as c
        join pg_namespace as n on n.oid = c.relnamespace
        left join pg_attribute as a
            on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            and col_description(c.oid, a.attnum) is null
        where n.nspname = 'marts' and c.relkind in ('r', 'v', 'm', 'p')
            and (obj_description(c.oid, 'pg_class') is null or a.attname is not null)
        order by 1, 2
        """
    )
    assert undescribed == []
    dashboard = module_db.scalar(
        "select obj_description('marts.publisher_dashboard'::regclass, 'pg_class')"
    )
    assert dashboard and "publisher" in dashboard.lower()

    # Ratios and money have a fixed scale (docs/models.md, "Scale"); only per-event facts keep
    # the collector's value.
    unscaled = module_db.query(
        """
        select table_name || '.' || column_name
        from information_schema.columns
        where table_schema = 'marts' and data_type = 'numeric' and numeric_scale is null
        order by 1
        """
    )
    assert [row[0] for row in unscaled] == [
        "fct_invocations.cost_usd",
        "fct_invocations.duration_ms",
        "fct_llm_calls.computed_cost_usd",
        "fct_llm_calls.cost_usd",
        "fct_llm_calls.duration_ms",
        "fct_llm_calls.ingested_cost_usd",
    ]
