"""agent-analytics loader: validated, exactly-once bulk loads of agent event batches."""

__version__ = "0.1.0"
