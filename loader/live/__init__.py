"""The live path: the HTTP ingest server, the following loader and the Python clients."""
