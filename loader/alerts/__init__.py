"""`agent-loader alerts`: alert rules evaluated on the operational marts, delivered to webhooks."""
