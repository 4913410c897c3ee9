"""The error hierarchy: every failure a user can fix is a `SmeltError` with a message that names
the object at fault and the fix, so the CLI prints it in one line without a traceback."""


class SmeltError(Exception):
    """Base of all errors that smelt reports to a user."""


class InputError(SmeltError):
    """An input (path, bucket, file, flag) is missing, unreadable or malformed."""


class ConfigError(SmeltError):
    """A configuration value or file is invalid."""


class IntegrityError(SmeltError):
    """Stored data does not match its manifest, checksum or format."""
