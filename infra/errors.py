"""The one error of the infra package."""


class ConfigError(ValueError):
    """A context value is missing or wrong; the message names the key."""
