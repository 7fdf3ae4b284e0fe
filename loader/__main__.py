"""`python -m loader` is `agent-loader`."""

from loader.cli import main

if __name__ == "__main__":  # not when `serve`'s worker processes import this module
    main()
