"""The one exception type that means: the user asked for something invalid."""


class ConfigError(ValueError):
    """Bad input caught before training; its message is one line naming the value and the fix."""
