"""The single exception type for bad data-set input (raised before any training starts)."""


class DataError(ValueError):
    """Bad data-set input: the message names the path/row/key and what was expected."""
