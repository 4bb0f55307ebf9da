"""Exceptions raised by the data layer; each message names the problem and the fix."""


class DataError(ValueError):
    """Base class of jaxood's data errors (a ValueError, so plain callers catch it)."""


class UnknownDatasetError(DataError):
    """The dataset name is neither an offline builder nor a tfds dataset."""


class UnknownSplitError(DataError):
    """The split does not exist for the dataset."""


class SourceMissingError(DataError):
    """An offline source (Debian package, wheel file) is not installed."""
