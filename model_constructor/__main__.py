"""`python -m model_constructor`: the command line of `cli.py`."""

from .cli import entry_point

entry_point()
