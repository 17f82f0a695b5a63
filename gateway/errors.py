"""The gateway's exception hierarchy.

Every exception the core raises on purpose derives from :class:`GatewayError`, so a caller
can tell "the gateway refused" from "the gateway has a bug". Operator-facing errors say what
to do about them.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises deliberately."""


class ConfigError(GatewayError):
    """Raised when a configuration file cannot be used.

    Carries the file, the dotted key and the problem, so that the message an operator reads
    is always ``gateway.toml: plugins.sms_smpp.smsc[0].port: must be an integer 1-65535``.
    Several problems found in one pass are carried together in :attr:`problems`.
    """

    def __init__(self, problems: list[ConfigProblem] | ConfigProblem) -> None:
        if isinstance(problems, ConfigProblem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class ConfigProblem:
    """One problem in one configuration file: where it is and what is wrong."""

    __slots__ = ("file", "key", "message")

    def __init__(self, key: str, message: str, file: str | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message

    def with_file(self, file: str) -> ConfigProblem:
        return ConfigProblem(self.key, self.message, file=self.file or file)

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = self.key or "(top level)"
        return f"{where}{key}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self.file!r}, {self.key!r}, {self.message!r})"


class PluginError(GatewayError):
    """Raised when a plugin cannot be loaded or fails to start; names the plugin."""

    def __init__(self, plugin: str, message: str) -> None:
        self.plugin = plugin
        super().__init__(f"plugin {plugin!r}: {message}")


class StoreError(GatewayError):
    """Raised when the state store cannot be opened or written (disk full, permissions)."""


class ContactControlError(GatewayError):
    """Raised when contact control cannot reach a decision (backend down, unknown reservation)."""


class AdminCommandError(GatewayError):
    """Raised by an admin command handler; the message is shown to the gatewayctl user."""


class WriterProcessDied(StoreError):
    """The state writer process exited with a batch in flight: its outcome is unknown."""
