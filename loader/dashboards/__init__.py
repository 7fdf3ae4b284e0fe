"""`agent-loader dashboards`: the Evidence sites in dashboards/, one per audience."""
