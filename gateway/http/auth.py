"""Who is calling: API keys and HMAC-signed requests for the routes of the HTTP host.

Two ways for a configured client (``[http.clients.NAME]``) to prove itself:

- **API key**: header ``X-Api-Key: <key>``. Every configured key is compared in constant time
  (``hmac.compare_digest``, all of them, no early exit), so the answer time does not tell how
  much of a guess was right. Peers that only speak HTTP Basic authentication (MMS centres) may
  send ``Authorization: Basic base64(<client name>:<key>)`` instead.
- **Signed request**: headers ``X-Client: <name>``, ``X-Timestamp: <unix seconds>`` and
  ``X-Signature: <hex>``, the HMAC-SHA256 (RFC 2104) with the client's secret over

      METHOD "\\n" TARGET "\\n" TIMESTAMP "\\n" hex(SHA-256(body))

  where TARGET is the request target as sent (path and query). The secret never travels; a
  signature is good for ``signature_window`` seconds either side of our clock, and only once:
  each accepted signature is remembered until its timestamp leaves the window, so a captured
  request cannot be replayed. That memory is bounded (``replay_cache_size``); when it is full
  of live signatures, signed requests are refused (503) rather than accepted unremembered.

Pure logic, no I/O: the host calls :meth:`Authenticator.check` with the request's parts.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import time
from collections.abc import Callable, Mapping

import attrs

from gateway.http.config import HttpClient

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"
CLIENT_HEADER = "x-client"
TIMESTAMP_HEADER = "x-timestamp"
SIGNATURE_HEADER = "x-signature"


class AuthRefused(Exception):
    """Raised by :meth:`Authenticator.check` when a request does not prove a client.

    ``status`` is 401 (no or wrong credentials) or 503 (the replay memory is full); the
    message is safe to send back and to log (it never holds a secret).
    """

    def __init__(self, status: int, reason: str, *, client: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.client = client


def signature(secret: str, method: str, target: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a client sends in ``X-Signature`` (see the module docstring)."""
    message = "\n".join([method.upper(), target, timestamp, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode("latin-1"), hashlib.sha256).hexdigest()


@attrs.define
class ReplayCache:
    """Signatures seen, each kept until ``expires`` (its timestamp plus the window).

    ``add`` returns False for a signature already held. Bounded: at ``capacity`` live
    entries :meth:`add` raises :class:`AuthRefused` (503) instead of forgetting one.
    """

    capacity: int
    _expiry: dict[str, float] = attrs.field(factory=dict)
    _heap: list[tuple[float, str]] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self._expiry)

    def add(self, key: str, expires: float, now: float) -> bool:
        heap = self._heap
        while heap and heap[0][0] < now:
            _, old = heapq.heappop(heap)
            del self._expiry[old]
        if key in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            raise AuthRefused(503, "too many signed requests in the window; retry later")
        self._expiry[key] = expires
        heapq.heappush(heap, (expires, key))
        return True


@attrs.define
class Authenticator:
    """Checks the credentials of one request against the configured clients."""

    clients: Mapping[str, HttpClient]
    window: float = 300.0
    replay: ReplayCache = attrs.field(factory=lambda: ReplayCache(capacity=100_000))
    #: Wall clock (signatures carry Unix time); tests pass their own.
    clock: Callable[[], float] = time.time
    _keys: list[tuple[bytes, str]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._keys = [(c.api_key.encode(), c.name) for c in self.clients.values() if c.api_key]

    def check(
        self, mode: str, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """The client's name for a route with ``auth=mode``; raises AuthRefused.

        ``"none"`` returns "". ``"any"`` takes a signature when ``X-Signature`` is present,
        else an API key.
        """
        if mode == "none":
            return ""
        if mode == "hmac" or (mode == "any" and SIGNATURE_HEADER in headers):
            return self.check_signature(method, target, headers, body)
        if mode == "key" or mode == "any":
            return self.check_key(headers)
        raise AuthRefused(401, f"unknown auth mode {mode!r}")  # routes are checked at start

    def check_key(self, headers: Mapping[str, str]) -> str:
        """The client whose API key is in ``X-Api-Key``, or in HTTP Basic credentials
        (``Authorization: Basic base64(name:api_key)``, RFC 7617, for peers such as MMS
        centres that only speak that); raises AuthRefused."""
        given = headers.get(API_KEY_HEADER)
        if given is None:
            return self._check_basic(headers.get(AUTHORIZATION_HEADER, ""))
        given_bytes = given.encode("latin-1", "replace")
        found = ""
        for key, name in self._keys:  # all of them: the time does not depend on which matched
            if hmac.compare_digest(key, given_bytes):
                found = name
        if not found:
            raise AuthRefused(401, "unknown API key")
        return found

    def _check_basic(self, authorization: str) -> str:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise AuthRefused(401, "credentials required: X-Api-Key or a signed request")
        try:
            name, sep, key = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            raise AuthRefused(401, "malformed Basic credentials") from None
        client = self.clients.get(name)
        expected = client.api_key.encode() if client is not None and client.api_key else b"\0"
        # Compared even for an unknown name, so that the time does not tell which names exist.
        if not (hmac.compare_digest(expected, key.encode()) and sep and client is not None):
            raise AuthRefused(401, "unknown client or API key", client=name)
        return name

    def check_signature(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> str:
        """The client named in ``X-Client`` if its signature is good and new; raises AuthRefused."""
        name = headers.get(CLIENT_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not (name and timestamp and given):
            raise AuthRefused(401, "a signed request needs X-Client, X-Timestamp and X-Signature")
        client = self.clients.get(name)
        if client is None or not client.hmac_secret:
            raise AuthRefused(401, "unknown client or no signing secret", client=name)
        # ASCII digits, and short: int() of thousands of digits is slow (and limited).
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise AuthRefused(401, "X-Timestamp must be Unix seconds", client=name)
        now = self.clock()
        signed_at = int(timestamp)
        if abs(now - signed_at) > self.window:
            raise AuthRefused(401, f"X-Timestamp outside the {self.window:g} s window", client=name)
        expected = signature(client.hmac_secret, method, target, timestamp, body)
        if not hmac.compare_digest(expected.encode(), given.lower().encode("latin-1", "replace")):
            raise AuthRefused(401, "bad signature", client=name)
        if not self.replay.add(f"{name}:{expected}", signed_at + self.window, now):
            raise AuthRefused(401, "replayed signature", client=name)
        return name
