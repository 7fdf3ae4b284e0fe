"""The project's structure, read from the manifest of `dbt parse` (no database, no packages):
marts are public and owned, every macro is documented (the overrides of dbt's own macros
say so, and why), a column name means one thing in every model, and the comments BI users
read describe the data, not the code it was compared with."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Columns whose name is shared but whose meaning differs between models: (column, model) ->
# why. Every other column name of two or more models has one description (its
# `col_<name>` doc block in models/_columns__docs.md).
DIFFERENT_MEANINGS = {
    ("tool_calls", "fct_conversations"): (
        "a count of the conversation's `tool_call` events; elsewhere the list of tools an "
        "invocation called"
    ),
    ("total_tokens", "int_invocations_enriched"): (
        "an invocation's input + output tokens (col_invocation_total_tokens); elsewhere the "
        "conversation events' own `total_tokens`"
    ),
    ("total_tokens", "fct_invocations"): "as for int_invocations_enriched",
    ("finished_at", "stg_loader__purges"): "a purge run's end, not an invocation's",
    ("started_at", "stg_loader__purges"): "a purge run's start, not a conversation's",
    # The tenant cost metrics the insight and alert rules read: a metric table's own columns
    # (which metrics, over which period), not a finding's.
    ("metric_name", "tenant_llm_metrics"): "names the four metrics and their period",
    ("metric_value", "tenant_llm_metrics"): "a tenant's value over a month or a day",
    ("sample_size", "tenant_llm_metrics"): "the month's calls or the spike's trailing days",
    # LLM calls (models/marts/llm, issue 26): the span's meaning of a shared name.
    ("cost_usd", "int_llm_calls_priced"): (
        "an LLM call's cost (col_llm_cost_usd), not an invocation's price"
    ),
    ("cost_usd", "fct_llm_calls"): (
        "an LLM call's cost (col_llm_cost_usd), not an invocation's price"
    ),
    ("cost_usd", "llm_cost_daily"): (
        "an LLM call's cost (col_llm_cost_usd), not an invocation's price"
    ),
    ("input_tokens", "stg_otel__genai_operations"): (
        "an LLM call's input tokens, cache reads and writes included"
    ),
    ("input_tokens", "int_llm_calls_priced"): (
        "an LLM call's input tokens, cache reads and writes included"
    ),
    ("input_tokens", "fct_llm_calls"): (
        "an LLM call's input tokens, cache reads and writes included"
    ),
    ("input_tokens", "llm_cost_daily"): (
        "an LLM call's input tokens, cache reads and writes included"
    ),
    ("input_tokens", "llm_unpriced_models"): (
        "an LLM call's input tokens, cache reads and writes included"
    ),
    ("output_tokens", "stg_otel__genai_operations"): (
        "an LLM call's output tokens, reasoning included; elsewhere an invocation's"
    ),
    ("output_tokens", "int_llm_calls_priced"): (
        "an LLM call's output tokens, reasoning included; elsewhere an invocation's"
    ),
    ("output_tokens", "fct_llm_calls"): (
        "an LLM call's output tokens, reasoning included; elsewhere an invocation's"
    ),
    ("output_tokens", "llm_cost_daily"): (
        "an LLM call's output tokens, reasoning included; elsewhere an invocation's"
    ),
    ("output_tokens", "llm_unpriced_models"): (
        "an LLM call's output tokens, reasoning included; elsewhere an invocation's"
    ),
    ("total_tokens", "int_llm_calls_priced"): "an LLM call's input + output tokens",
    ("total_tokens", "fct_llm_calls"): "an LLM call's input + output tokens",
    ("total_tokens", "llm_cost_daily"): "an LLM call's input + output tokens",
    ("duration_ms", "stg_otel__genai_operations"): "a span's duration, from its nanoseconds",
    ("duration_ms", "int_llm_calls_priced"): "a span's duration, from its nanoseconds",
    ("duration_ms", "fct_llm_calls"): "a span's duration, from its nanoseconds",
    ("error_type", "stg_otel__genai_operations"): (
        "a span's `error.type` (`_OTHER` when unnamed); null is a success, not an unknown type"
    ),
    ("error_type", "int_llm_calls_priced"): (
        "a span's `error.type` (`_OTHER` when unnamed); null is a success, not an unknown type"
    ),
    ("error_type", "fct_llm_calls"): (
        "a span's `error.type` (`_OTHER` when unnamed); null is a success, not an unknown type"
    ),
    ("started_at", "stg_otel__genai_operations"): "a span's start, not a conversation's",
    ("started_at", "int_llm_calls_priced"): "a span's start, not a conversation's",
    ("started_at", "fct_llm_calls"): "a span's start, not a conversation's",
    ("ended_at", "stg_otel__genai_operations"): "a span's end, not a conversation's",
    ("ended_at", "int_llm_calls_priced"): "a span's end, not a conversation's",
    ("model_name", "int_llm_calls_priced"): (
        "an LLM call's response model, else its requested model"
    ),
    ("model_name", "fct_llm_calls"): ("an LLM call's response model, else its requested model"),
    ("model_name", "llm_cost_daily"): ("an LLM call's response model, else its requested model"),
    ("model_name", "llm_unpriced_models"): (
        "an LLM call's response model, else its requested model"
    ),
    ("calls", "llm_cost_daily"): "LLM calls, not tool calls",
    ("calls", "llm_unpriced_models"): "LLM calls, not tool calls",
    ("conversations", "tenant_unit_economics_monthly"): (
        "the distinct conversations a tenant's LLM calls name"
    ),
    ("error_rate", "llm_cost_daily"): (
        "failed LLM calls over LLM calls (the same `error_rate` macro)"
    ),
    ("insight_id", "tenant_llm_insights"): "md5 of rule, tenant and day: a tenant's finding",
    ("metric_value", "tenant_llm_insights"): "the metric's value for the tenant (month or day)",
    ("sample_size", "tenant_llm_insights"): "LLM calls of the month, or trailing days with a call",
}
# The publisher-facing marts publish an operator mart's column, and say after its definition
# when they null or round it (docs/security.md).
PUBLISHER_FACING_SUFFIX = "_shared"
# The overrides of dbt's own macros that change how dbt tests on PostgreSQL.
TEST_OVERRIDES = {
    "get_where_subquery": "macros/test_window.sql",
    "postgres__test_relationships": "macros/relationships_test.sql",
}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("parse")
    shutil.copy(REPO / "profiles.yml", folder / "profiles.yml")
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "parse",
            "--profiles-dir",
            str(folder),
            "--target-path",
            str(folder / "target"),
            "--log-path",
            str(folder / "logs"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return json.loads((folder / "target" / "manifest.json").read_text())


def own_models(manifest: dict) -> list[dict]:
    return [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "agent_analytics"
    ]


def marts(manifest: dict) -> list[dict]:
    return [
        node
        for node in own_models(manifest)
        if node["original_file_path"].startswith("models/marts/")
    ]


def test_every_mart_is_public_in_a_group_with_an_owner(manifest: dict):
    found = marts(manifest)
    assert len(found) >= 20
    groups = {group["name"]: group for group in manifest["groups"].values()}
    wrong = [
        node["name"] for node in found if node["access"] != "public" or node["group"] not in groups
    ]
    assert wrong == []
    for group in groups.values():
        assert group["owner"].get("name") or group["owner"].get("email"), group["name"]
    # Nothing but the marts is public: staging and intermediate are for the project only.
    public = {node["name"] for node in own_models(manifest) if node["access"] == "public"}
    assert public == {node["name"] for node in found}


def own_macros(manifest: dict) -> list[dict]:
    return [
        macro
        for macro in manifest["macros"].values()
        if macro["package_name"] == "agent_analytics"
        and macro["original_file_path"].startswith("macros/")
    ]


def test_every_macro_has_an_entry_in_macros_yml(manifest: dict):
    macros = own_macros(manifest)
    assert len(macros) >= 100
    undocumented = [
        macro["name"]
        for macro in macros
        if not macro["description"].strip()
        or macro["patch_path"] != "agent_analytics://macros/macros.yml"
    ]
    assert undocumented == []


def dbt_builtin_overridden(name: str, builtins: set[str], own: set[str]) -> str | None:
    """The dbt macro `name` replaces: the same name, or an adapter implementation
    (`postgres__x`, `spark__x`) of a dbt macro `x` this project does not define itself."""
    if name in builtins:
        return name
    adapter = re.match(r"^(postgres|spark|default)__(.+)$", name)
    if adapter and adapter.group(2) not in own:
        base = adapter.group(2)
        if base in builtins or f"default__{base}" in builtins:
            return base
    return None


def test_overrides_of_dbt_macros_say_so_and_why(manifest: dict):
    builtins = {
        macro["name"]
        for macro in manifest["macros"].values()
        if macro["package_name"] in ("dbt", "dbt_postgres", "dbt_spark")
    }
    macros = own_macros(manifest)
    own = {macro["name"] for macro in macros}
    overrides = {
        macro["name"]: macro
        for macro in macros
        if dbt_builtin_overridden(macro["name"], builtins, own)
    }
    assert set(TEST_OVERRIDES) <= set(overrides)
    for name, path in TEST_OVERRIDES.items():
        assert overrides[name]["original_file_path"] == path
    for name, macro in overrides.items():
        description = macro["description"]
        overridden = dbt_builtin_overridden(name, builtins, own)
        assert description.startswith(("Overrides dbt's", "Overrides dbt-")), name
        # names what it replaces (a materialization by its name: `incremental`)
        named = re.sub(r"^materialization_(\w+?)_(spark|postgres|default)$", r"\1", overridden)
        assert named in description, name
        # and why: the first sentence gives the reason
        assert re.search(r"\b(so that|because)\b", description.split("\n")[0]), name
    # The other direction: a macro that says it overrides one of dbt's is one.
    claimed = {
        macro["name"] for macro in macros if macro["description"].startswith("Overrides dbt")
    }
    not_overrides = (
        claimed - set(overrides) - {name for name in claimed if name.startswith("materialization_")}
    )
    assert not_overrides == set()


def column_descriptions(manifest: dict) -> dict[str, dict[str, str]]:
    """column name -> model name -> rendered description, over the project's models."""
    columns: dict[str, dict[str, str]] = defaultdict(dict)
    for node in own_models(manifest):
        for name, column in node["columns"].items():
            columns[name][node["name"]] = column["description"].strip()
    return columns


def test_a_shared_column_has_one_description(manifest: dict):
    columns = column_descriptions(manifest)
    shared = {name: models for name, models in columns.items() if len(models) >= 2}
    assert len(shared) >= 50
    for column, model in DIFFERENT_MEANINGS:
        assert model in columns[column], f"stale exception: {model}.{column}"

    differing = {}
    for name, models in shared.items():
        compared = {
            model: text for model, text in models.items() if (name, model) not in DIFFERENT_MEANINGS
        }
        operator = {
            model: text
            for model, text in compared.items()
            if not model.endswith(PUBLISHER_FACING_SUFFIX)
        }
        texts = set(operator.values()) or set(compared.values())
        if len(texts) > 1:
            differing[name] = operator
            continue
        definition = texts.pop() if texts else ""
        # A publisher-facing mart starts with the same definition, then may say when it
        # publishes null or a rounded value.
        for model, text in compared.items():
            if model.endswith(PUBLISHER_FACING_SUFFIX) and not text.startswith(definition):
                differing[name] = compared
    assert differing == {}


def test_the_shared_definitions_are_the_col_doc_blocks(manifest: dict):
    blocks = {
        doc["name"]: doc["block_contents"].strip()
        for doc in manifest["docs"].values()
        if doc["package_name"] == "agent_analytics" and doc["name"].startswith("col_")
    }
    aliases = {"total_invocations": "col_invocations", "total_revenue": "col_revenue_usd"}
    columns = column_descriptions(manifest)
    missing = []
    for name, models in columns.items():
        compared = {
            model: text for model, text in models.items() if (name, model) not in DIFFERENT_MEANINGS
        }
        if len(compared) < 2:
            continue
        for model, text in compared.items():
            block = blocks.get(aliases.get(name, f"col_{name}"))
            if block is None or not text.startswith(block):
                missing.append(f"{model}.{name}")
    assert missing == []


def test_what_bi_users_read_never_mentions_the_reference(manifest: dict):
    readable = [
        *marts(manifest),
        *(node for node in manifest["nodes"].values() if node["resource_type"] == "snapshot"),
    ]
    mentions = []
    for node in readable:
        if re.search("reference", node["description"], re.IGNORECASE):
            mentions.append(node["name"])
        for name, column in node["columns"].items():
            if re.search("reference", column["description"], re.IGNORECASE):
                mentions.append(f"{node['name']}.{name}")
    assert mentions == []


def test_evaluator_settings_name_what_exists(manifest: dict):
    """The evaluator's grain-test macros exist, and every accepted finding says why."""
    project = (REPO / "dbt_project.yml").read_text()
    macros = re.findall(r'"agent_analytics\.(test_\w+)"', project)
    assert macros == ["test_unique_combination_of_columns"]
    for name in macros:
        assert f"macro.agent_analytics.{name}" in manifest["macros"]

    with (REPO / "seeds" / "dbt_project_evaluator_exceptions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    assert list(rows[0]) == ["fct_name", "column_name", "id_to_exclude", "comment"]
    for row in rows:
        assert row["fct_name"].startswith("fct_"), row
        assert len(row["comment"]) >= 40, row
    # An exception names a model, source or snapshot of the project, not a stale one.
    names = {node["name"] for node in manifest["nodes"].values()} | {
        f"{source['source_name']}.{source['name']}" for source in manifest["sources"].values()
    }
    stale = [row["id_to_exclude"] for row in rows if row["id_to_exclude"] not in names]
    assert stale == []


def test_the_evaluator_script_skips_without_packages_and_refuses_a_wrong_folder(tmp_path: Path):
    """CI without the packages passes with a note; a folder without them fails, not skips."""
    script = REPO / ".ci" / "evaluator"
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    skipped = subprocess.run([str(script)], env=env, capture_output=True, text=True)
    assert skipped.returncode == 0
    assert skipped.stdout.startswith("evaluator: skipped")
    wrong = subprocess.run(
        [str(script)],
        env={**env, "EVALUATOR_PACKAGES": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2
    assert "dbt_project_evaluator/dbt_project.yml not found" in wrong.stderr
