"""The single exception type for bad data-set input (raised before any training starts)."""

from glattn.errors import UserError


class DataError(UserError, ValueError):
    """Bad data-set input: the message names the path/row/key and what was expected."""
