"""Staged list imports: the lines of a ``dnd import`` file, streamed by ``gatewayctl``.

The daemon never opens a file named by a client (it runs with its own privileges). The
client reads the file and sends its lines in chunks over the control socket; each chunk is
parsed and normalised on arrival (in a worker thread), so a bad line stops the upload at
once, and only a complete, checked upload replaces a list (in one transaction, see
:meth:`gateway.contact.lists.ListStore.replace`). See :mod:`gateway.contact.admin` for the
commands.

Uploads are held in memory by the admin commands of one gateway; at most
:data:`MAX_UPLOADS` at once, and one untouched for :data:`IDLE_TIMEOUT_S` is dropped.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import attrs
import trio

from gateway.contact.lists import ListFileError, parse_list_lines, validate_key
from gateway.errors import AdminCommandError
from gateway.numbers import NumberPlan, active_plan

MAX_UPLOADS = 4
IDLE_TIMEOUT_S = 600.0


@attrs.define
class StagedImport:
    """One upload: where it goes, and the entries checked so far (``msisdn -> (reason, expiry)``)."""

    category: str
    scope: str
    source: str
    allow_empty: bool
    plan: NumberPlan
    items: dict[str, tuple[str, float | None]] = attrs.field(factory=dict)
    lines: int = 0
    next_seq: int = 0
    busy: bool = False
    touched: float = 0.0

    def entries(self) -> Iterator[tuple[str, str, float | None]]:
        for msisdn, (reason, expires) in self.items.items():
            yield msisdn, reason, expires

    def take(self, text: str) -> None:
        """Parse whole lines (blocking: runs in a worker thread). Raises ListFileError."""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        items = self.items
        for msisdn, reason, expires in parse_list_lines(
            lines, first_line=self.lines + 1, plan=self.plan
        ):
            items[msisdn] = (reason, expires)
        self.lines += len(lines)


@attrs.define
class Uploads:
    """The staged imports of one gateway's admin commands."""

    clock: Callable[[], float] = time.monotonic
    _staged: dict[str, StagedImport] = attrs.field(factory=dict)
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))

    def begin(self, category: str, *, scope: str, source: str, allow_empty: bool) -> str:
        """A new upload for ``category``/``scope``; returns its id."""
        try:
            validate_key(category, scope)
        except ValueError as exc:
            raise AdminCommandError(str(exc)) from None
        self._sweep()
        if len(self._staged) >= MAX_UPLOADS:
            raise AdminCommandError(
                f"{MAX_UPLOADS} list imports are already in progress; try again when one is done"
            )
        upload = secrets.token_hex(8)
        self._staged[upload] = StagedImport(
            category=category,
            scope=scope,
            source=source,
            allow_empty=allow_empty,
            plan=active_plan(),
            touched=self.clock(),
        )
        return upload

    async def add_lines(self, upload: str, seq: str, text: str) -> dict[str, int]:
        """Check and stage one chunk of whole lines; the upload is dropped on a bad line."""
        staged = self._get(upload)
        if staged.busy:
            raise AdminCommandError("a chunk of this upload is still being read")
        if seq != str(staged.next_seq):
            self._staged.pop(upload, None)
            raise AdminCommandError(
                f"upload {upload}: chunk {seq!r} out of order (expected {staged.next_seq}); "
                "upload dropped"
            )
        staged.busy = True
        try:
            await trio.to_thread.run_sync(staged.take, text, limiter=self._limiter)
        except ListFileError as exc:
            self._staged.pop(upload, None)
            raise AdminCommandError(f"import refused, list unchanged: {exc}") from None
        finally:
            staged.busy = False
        staged.next_seq += 1
        staged.touched = self.clock()
        return {"lines": staged.lines, "entries": len(staged.items)}

    def finish(self, upload: str) -> StagedImport:
        """The complete upload, removed from the staging area; refused when empty."""
        staged = self._get(upload)
        if staged.busy:
            raise AdminCommandError("a chunk of this upload is still being read")
        del self._staged[upload]
        if not staged.items and not staged.allow_empty:
            raise AdminCommandError(
                f"import refused, {staged.category} unchanged: the file has no entries "
                f"({staged.lines} lines read); to empty the list on purpose, use --allow-empty"
            )
        return staged

    def abort(self, upload: str) -> bool:
        return self._staged.pop(upload, None) is not None

    def _get(self, upload: str) -> StagedImport:
        self._sweep()
        staged = self._staged.get(upload)
        if staged is None:
            raise AdminCommandError(f"no list import {upload!r} in progress (finished or expired)")
        return staged

    def _sweep(self) -> None:
        now = self.clock()
        for upload, staged in list(self._staged.items()):
            if not staged.busy and now - staged.touched > IDLE_TIMEOUT_S:
                del self._staged[upload]
