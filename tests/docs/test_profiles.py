"""`profiles.example.yml`, the template for ~/.dbt/profiles.yml, agrees with the shipped profile.

The example has no defaults (a missing variable must stop dbt, not reach another server);
everything else that makes a build safe or correct is the shipped profile's, setting by setting.
"""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

from tests.conftest import REPO

# Where the two may differ, and why: the example names its variables with no fallback.
_MAY_DIFFER = {"host", "port", "user", "password", "dbname", "role", "sslmode"}


def _postgres_output(name: str) -> dict:
    profile = yaml.safe_load((REPO / name).read_text())["agent_analytics"]
    return next(o for o in profile["outputs"].values() if o["type"] == "postgres")


def test_the_example_keeps_every_setting_of_the_shipped_profile() -> None:
    shipped, example = _postgres_output("profiles.yml"), _postgres_output("profiles.example.yml")
    assert set(shipped) - set(example) == set()
    for key in set(shipped) - _MAY_DIFFER:
        assert example[key] == shipped[key], key


def test_the_example_reads_the_same_variables_with_no_fallback() -> None:
    example = _postgres_output("profiles.example.yml")
    for key, variable in [
        ("host", "PGHOST"),
        ("user", "PGUSER"),
        ("password", "PGPASSWORD"),
        ("dbname", "PGDATABASE"),
        ("role", "AGENT_ANALYTICS_DBT_ROLE"),
    ]:
        assert re.fullmatch(rf"\{{\{{ env_var\('{variable}'\) \}}\}}", example[key]), key


def _parse(profiles_dir, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "", "HOME": str(profiles_dir), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    return subprocess.run(
        [
            *(sys.executable, "-c", "from dbt.cli.main import cli; cli()", "parse"),
            *("--profiles-dir", str(profiles_dir), "--target-path", str(profiles_dir / "target")),
        ],
        cwd=REPO,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_dbt_parses_with_the_example_and_names_a_missing_variable(tmp_path) -> None:
    """Copied as the docs say: with every variable set dbt parses the project; without
    PGHOST it stops and names it (parse opens no connection, so no server is reached)."""
    (tmp_path / "profiles.yml").write_text((REPO / "profiles.example.yml").read_text())
    variables = {
        "PGHOST": "db.invalid",
        "PGUSER": "analytics",
        "PGPASSWORD": "x",
        "PGDATABASE": "warehouse",
        "AGENT_ANALYTICS_DBT_ROLE": "aa_transformer",
    }
    parsed = _parse(tmp_path, **variables)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    del variables["PGHOST"]
    refused = _parse(tmp_path, **variables)
    assert refused.returncode != 0
    assert "PGHOST" in refused.stdout + refused.stderr
