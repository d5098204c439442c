"""Errors meant for the person at the terminal: printed as one line, never as a traceback."""


class UserError(Exception):
    """Bad input the user can fix (a missing file, an unknown campaign, a malformed argument)."""
