"""The `dfbench` command line: arguments (:mod:`.parser`), dispatch (:mod:`.main`), and one module
per group of commands (:mod:`.cluster`, :mod:`.remote`, :mod:`.data`, :mod:`.bench`)."""

from dfbench.cli.main import main

__all__ = ["main"]
