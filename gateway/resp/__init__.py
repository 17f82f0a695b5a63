"""RESP2, the Redis serialization protocol: a sans-IO codec and a thin Trio client.

Part of the core because Redis is the core's shared state store (contact control), not a
peer of the outside world; the codec module stays sans-IO like the adapters.

Written here because no well-kept Trio-native Redis client exists (the maintained clients
are asyncio-only or synchronous); the Redis backend needs only commands, pipelining and
EVALSHA, which a small codec plus one connection class cover.
"""

from gateway.resp.codec import (
    NEED_DATA,
    ErrorReply,
    LocalProtocolError,
    RemoteProtocolError,
    RespParser,
    encode_command,
)

__all__ = [
    "NEED_DATA",
    "ErrorReply",
    "LocalProtocolError",
    "RemoteProtocolError",
    "RespParser",
    "encode_command",
]
