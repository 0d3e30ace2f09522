"""Error and warning types of the data package.

Every known failure of loading, parsing or validating market data raises
:class:`DataError` (a ``ValueError``) with a single-line message that names the
file or source and the first offending row or column, so a command-line tool
can print ``str(error)`` and exit without a traceback.
"""


class DataError(ValueError):
    """Bad or unavailable market data; the message is one self-contained line."""

    def __init__(self, message: str):
        # One line, always: the CLI prints str(error) as is.
        super().__init__(" ".join(str(message).split()))


class DataUnavailable(DataError):
    """The data could not be obtained (offline, rate limited, nothing cached)."""


class CacheCorrupt(DataError):
    """A cache file failed its row-count or checksum check; it was not used."""


class DataGapWarning(UserWarning):
    """Bars are missing from a 24/7 series (reported, never filled)."""


class CacheWarning(UserWarning):
    """The cache could not be written; the run continues uncached."""
