"""`dbt` (the global project's macros) for sqlfluff's jinja templater (lint only)."""


def is_incremental() -> bool:
    """As sqlfluff's dbt builtin: lint the incremental branch too."""
    return True
