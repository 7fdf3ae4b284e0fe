"""`target` for sqlfluff's jinja templater (lint only): the PostgreSQL profile."""

type = "postgres"
name = "default"
