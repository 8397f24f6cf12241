"""The gateway library's errors. Each says what went wrong in words a user can act on;
the API maps them to status codes in one place (api/__init__.py) and the CLI prints them.
Anything else that escapes is a bug: logged, and answered 500."""


class PingjiaError(Exception):
    """Base of the errors the library raises on purpose."""


class NotFound(PingjiaError):
    """No such device, window session, rating..."""


class Conflict(PingjiaError):
    """The request contradicts what is stored: already registered, retired, not held..."""


class ConfigError(PingjiaError):
    """The hall's settings (gateway.json) are missing or wrong."""
