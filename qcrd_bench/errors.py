"""User-facing errors: each carries a one-line message naming the file, line, key
or option at fault.  The CLI prints it and exits non-zero without a traceback."""


class QcrdError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class ConfigError(QcrdError):
    """A config file, --set value, preset or option is invalid."""


class PluginError(QcrdError):
    """A plugin could not be loaded, or its components clash or are unknown."""


class InputFileError(QcrdError):
    """A data or rationale file is malformed; the message names file and line."""


class DataError(QcrdError):
    """A data file cannot be provided (missing, not downloadable, checksum mismatch);
    the message names the file and the remedy."""
