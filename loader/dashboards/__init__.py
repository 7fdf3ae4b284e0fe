"""`agent-loader dashboards`: the static sites built from dashboards/, one per audience."""
