"""The one error the list builder raises for input a person can fix (mapping, missing file or column)."""


class ListsError(Exception):
    """Unusable input: the message names the file and the column or key, and what is wrong."""
