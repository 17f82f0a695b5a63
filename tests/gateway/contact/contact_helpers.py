"""Helpers for contact-control tests: a settable clock, local timestamps, requests."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from gateway.model import ContactRequest

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def local_ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0, tz: Any = SHANGHAI) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


_counter = iter(range(10**9))


def req(
    msisdn: str = "8613800000001", *, campaign: str = "c1", channel: str = "sms", **kw: Any
) -> ContactRequest:
    """A contact request with a fresh contact_id unless one is given."""
    kw.setdefault("contact_id", f"k{next(_counter)}")
    return ContactRequest(msisdn=msisdn, campaign_id=campaign, channel=channel, **kw)
