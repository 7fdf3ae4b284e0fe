"""`adapter` for sqlfluff's jinja templater (lint only): dispatch picks the `default__` macro.

The models call engine-specific SQL through `adapter.dispatch` (macros/cross_engine/); lint
reads the PostgreSQL form, which is the `default__` implementation.
"""

from __future__ import annotations

from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context


@pass_context
def dispatch(context: Context, name: str, namespace: str | None = None) -> Any:
    return context[f"default__{name}"]
