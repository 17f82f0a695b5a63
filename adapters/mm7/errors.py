"""Errors of the MM7 codec: our own misuse (local) versus a peer's bad message (remote)."""

from __future__ import annotations


class MM7Error(Exception):
    """Root of the MM7 codec's errors."""


class LocalMM7Error(MM7Error):
    """Raised when we are asked to encode something MM7 cannot carry (a header value with a
    line break, an empty recipient list). A defect in the caller, not in the peer."""


class RemoteMM7Error(MM7Error):
    """Raised when a peer's message cannot be read: not XML, not a SOAP envelope, a missing
    element, a broken multipart body, or larger than the caps. ``status`` is the MM7 status
    code to answer with (4004 validation error, 2007 message format corrupt...)."""

    def __init__(self, message: str, *, status: int = 4004) -> None:
        super().__init__(message)
        self.status = status
