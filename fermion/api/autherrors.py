"""Authentication failures, kept apart from the Keystone client so noauth start-up stays light."""


class Unauthorized(Exception):
    """The request's token is missing or not valid."""


class KeystoneUnavailable(Exception):
    """Keystone could not be asked, or gave no usable answer."""
