"""Ingest: the event contract, the readers, privacy, the raw schema and the exactly-once load."""
