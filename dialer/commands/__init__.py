"""Command groups of the `dialer` CLI, one module each (see dialer/cli.py)."""
