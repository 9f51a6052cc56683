"""The one error type users see: a one-line message naming the file, column or value at fault.

May import: nothing.
"""


class MeanTFError(Exception):
    """Bad input or configuration. The CLI prints `error: <message>` and exits with code 2."""


class MeanTFWarning(UserWarning):
    """Something suspicious in the input that does not stop the run (e.g. an unexpected extra column)."""
