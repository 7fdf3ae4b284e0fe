"""What a newcomer meets when a step is skipped or interrupted: one message that says what to do."""

from __future__ import annotations

import pytest

from tests.conftest import Dbt


@pytest.mark.dbt
def test_dbt_build_before_init_stops_at_once_naming_agent_loader_init(empty_db, tmp_path):
    result = Dbt(empty_db, tmp_path)("build", check=False)
    assert result.returncode != 0
    assert (
        f"schema raw is not set up in database {empty_db.name} (missing: raw.agent_events,"
        " raw.marketplace_events, raw.purges): run `agent-loader init` against this database"
        in result.stdout
    ), result.stdout[-3000:]
    assert 'relation "raw.' not in result.stdout  # no model ran against the missing tables
