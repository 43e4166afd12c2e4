"""The `curate` entry point kept at the top level: it only starts the command line in `curate/cli/`.

`python cli.py ...`, `python -m cli ...` and `python -m curate ...` are the same command.
"""
from curate.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
