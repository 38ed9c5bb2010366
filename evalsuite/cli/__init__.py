"""The `evalsuite` command line (argparse only): evalsuite.cli.main holds the parser and the commands."""

from evalsuite.cli.main import main as main

__all__ = ["main"]
