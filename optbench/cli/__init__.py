"""The ``optbench`` command."""
from optbench.cli.commands import main

__all__ = ["main"]
