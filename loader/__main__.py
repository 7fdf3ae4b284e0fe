"""`python -m loader` is `agent-loader`."""

from loader.cli import main

main()
