"""One root error for labctl.

Every error carries a one-line message that says what went wrong and what to do, the host it
concerns (if any) and the process exit code the CLI should use. Stages raise these; the CLI
prints ``str(err)`` and exits with ``err.exit_code`` (tracebacks only with --debug).
"""

from __future__ import annotations


class LabctlError(Exception):
    """Root of every error labctl raises on purpose."""

    exit_code: int = 1
    #: short machine-readable kind, written into result files ("unreachable", "auth", ...)
    kind: str = "error"

    def __init__(self, message: str, *, host: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.host = host
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        """The one line shown to the user: ``host: what happened; what to do``."""
        text = self.message if self.host is None else f"{self.host}: {self.message}"
        if self.hint:
            text = f"{text}; {self.hint}"
        return text


class ConfigError(LabctlError):
    """Bad options, a malformed inventory or lab config."""

    exit_code = 2
    kind = "config"


class InventoryError(ConfigError):
    kind = "inventory"


class TransportError(LabctlError):
    """SSH-level failure talking to one host."""

    exit_code = 3
    kind = "transport"


class HostUnreachable(TransportError):
    kind = "unreachable"


class HostNotAnswering(HostUnreachable):
    """The port answered but SSH did not (a paused, swapping or restarting host): try again."""


class AuthenticationFailed(TransportError):
    kind = "auth"


class UnknownHostKey(TransportError):
    kind = "unknown-host-key"


class HostKeyMismatch(TransportError):
    kind = "host-key-mismatch"


class CommandTimeout(TransportError):
    kind = "timeout"


class ProbeError(LabctlError):
    """The agent could not run or its result could not be collected."""

    exit_code = 4
    kind = "probe"


class UnsafeHostPath(ProbeError):
    """A path labctl would use on a host that a user other than root and the login user could
    change (agent/hostpaths.py's rule): refused before anything runs there."""

    kind = "unsafe-path"


class ResultError(LabctlError):
    """A result file or run folder is missing, malformed or truncated."""

    exit_code = 5
    kind = "result"


class ProvisionError(LabctlError):
    exit_code = 6
    kind = "provision"


class LabError(LabctlError):
    """The local lab (driver) could not be created, inspected or destroyed."""

    exit_code = 7
    kind = "lab"


class Interrupted(LabctlError):
    """Ctrl-C or SIGTERM: the controller stopped following; agents run on, `collect` later."""

    exit_code = 130
    kind = "interrupted"


class PlayInterrupted(Interrupted):
    """Ctrl-C or SIGTERM while ansible-playbook ran: the play was cut, no agent was started."""
