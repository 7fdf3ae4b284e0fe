"""Developer tools: the synthetic event generator, the demo and the embedded PostgreSQL."""
