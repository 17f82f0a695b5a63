"""Calls to the BOSS over HTTP (httpx on Trio): retries with backoff, timeouts, a breaker.

:meth:`BossClient.call` sends one configured operation and returns the wanted fields of the
answer. It raises :class:`BossUnavailable` when the BOSS could not be reached or failed on its
side (connection refused, timeout, HTTP 5xx, a SOAP Server fault, an unreadable answer) after
``attempts`` tries, or at once while the circuit breaker is open: the caller keeps the work
and tries later. :class:`BossRejected` is final (HTTP 4xx other than 401/403, a SOAP Client
fault): the same request would be refused again. Refused credentials (401, 403) are our
configuration's fault, not the order's: they count as unavailable, so no order is lost to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import structlog
import trio

from plugins.boss_orders.breaker import CircuitBreaker
from plugins.boss_orders.codec import (
    AnswerError,
    SoapFault,
    parse_json,
    parse_soap,
    render_json,
    render_soap,
)
from plugins.boss_orders.config import BossOrdersConfig, Operation


class BossUnavailable(Exception):
    """The BOSS is down or failing on its side; try again later."""


class BossRejected(Exception):
    """The BOSS refused the request itself (4xx, SOAP Client fault); retrying will not help."""


class BossClient:
    def __init__(self, config: BossOrdersConfig, *, http: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.breaker = CircuitBreaker(
            failure_threshold=config.breaker_failures, reset_after=config.breaker_reset
        )
        auth = httpx.BasicAuth(config.username, config.password) if config.username else None
        self._http = http or httpx.AsyncClient(
            timeout=config.timeout, auth=auth, headers=dict(config.headers)
        )
        self.calls = 0
        self.failures = 0
        self.refused_open = 0

    async def aclose(self) -> None:
        await self._http.aclose()

    def request_of(self, op: Operation, values: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        if self.config.protocol == "soap":
            assert op.body is not None
            headers = {
                "content-type": "text/xml; charset=utf-8",
                "soapaction": f'"{op.soap_action}"',
            }
            return render_soap(op.body, values), headers
        return render_json(op.json or {}, values), {"content-type": "application/json"}

    async def call(self, op: Operation, values: Mapping[str, Any]) -> dict[str, str]:
        body, headers = self.request_of(op, values)
        delay = self.config.backoff
        last = "no attempt"
        for attempt in range(self.config.attempts):
            now = trio.current_time()
            if not self.breaker.allow(now):
                self.refused_open += 1
                raise BossUnavailable(
                    f"circuit breaker open ({self.breaker.retry_in(now):.1f}s left); last: {last}"
                )
            try:
                fields = await self._exchange(op, body, headers)
            except BossRejected:
                self.breaker.record_success()  # the BOSS is up and answering
                raise
            except BossUnavailable as exc:
                self.failures += 1
                self.breaker.record_failure(trio.current_time())
                last = str(exc)
                structlog.get_logger().warning(
                    "boss.call_failed", operation=op.name, attempt=attempt + 1, reason=last
                )
                if attempt + 1 < self.config.attempts:
                    await trio.sleep(delay)
                    delay *= 2
                continue
            self.breaker.record_success()
            return fields
        raise BossUnavailable(last)

    async def _exchange(
        self, op: Operation, body: bytes, headers: Mapping[str, str]
    ) -> dict[str, str]:
        self.calls += 1
        url = op.url or self.config.url
        try:
            with trio.fail_after(self.config.timeout):
                async with self._http.stream("POST", url, content=body, headers=headers) as reply:
                    chunks = []
                    size = 0
                    async for chunk in reply.aiter_bytes():
                        size += len(chunk)
                        if size > self.config.max_answer_bytes:
                            raise BossUnavailable(
                                f"answer larger than {self.config.max_answer_bytes} bytes"
                            )
                        chunks.append(chunk)
                    status = reply.status_code
        except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
            raise BossUnavailable(f"{type(exc).__name__}: {exc}") from None
        answer = b"".join(chunks)
        if status in (401, 403):
            # our credentials, not the order: keep the work until the operator fixes them
            raise BossUnavailable(f"HTTP {status}: check [plugins.boss_orders] username/password")
        parse = parse_soap if self.config.protocol == "soap" else parse_json
        try:
            fields = parse(answer, op.fields)
        except SoapFault as fault:
            if fault.client:
                raise BossRejected(f"SOAP fault {fault}") from None
            raise BossUnavailable(f"SOAP fault {fault}") from None
        except AnswerError as exc:
            if 400 <= status < 500:
                raise BossRejected(f"HTTP {status}") from None
            raise BossUnavailable(f"HTTP {status}: {exc}") from None
        if status >= 500:
            raise BossUnavailable(f"HTTP {status}")
        if 400 <= status < 500:
            raise BossRejected(f"HTTP {status}")
        if "code" not in fields:
            raise BossUnavailable(f"answer without the {op.fields.get('code')!r} field")
        return fields

    def statistics(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failures": self.failures,
            "refused_open": self.refused_open,
            "breaker": self.breaker.state.value,
            "breaker_opened": self.breaker.opened_count,
        }
