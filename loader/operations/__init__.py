"""Warehouse operations: roles and grants, retention, and the dbt runner."""
