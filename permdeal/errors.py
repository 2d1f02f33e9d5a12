"""The one exception type a user sees.

Every check of user input raises :class:`PermdealError` with a message that names the problem
(parameter, file, line); the CLI prints it as one line and exits non-zero. Anything else that
escapes is a bug in permdeal.
"""


class PermdealError(Exception):
    """A problem with the user's input or environment, with a message fit to print as is."""


class ToolMissing(PermdealError):
    """A simulator, synthesis tool or library it needs is not installed (the message says which
    package)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, CI runners and schedulers send), raised where the program is so
    that every output under construction is cleaned up as for Ctrl-C."""
