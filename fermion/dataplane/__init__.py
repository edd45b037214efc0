"""The only code that touches the kernel. Every operation takes the namespace that plays the host's root
(None: the real root namespace)."""


class DataplaneError(Exception):
    """A kernel operation failed; the message names the object and the kernel's reason."""
