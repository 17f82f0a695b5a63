"""The durable outbox between contact control and the channels (see :mod:`.outbox`)."""

from gateway.outbox.config import OutboxConfig, parse_outbox_config
from gateway.outbox.outbox import Outbox, OutboxMessage, OutboxQueue, open_outbox

__all__ = [
    "Outbox",
    "OutboxConfig",
    "OutboxMessage",
    "OutboxQueue",
    "open_outbox",
    "parse_outbox_config",
]
