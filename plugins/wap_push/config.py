"""``[plugins.wap_push]`` and its ``[plugins.wap_push.smsc]`` table.

The channel opens its own SMPP binds (``adapters.smpp``) with the settings here; it shares
no object with the SMS channel (plugins never import plugins).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from adapters.wap.wbxml import SiAction, SlAction
from gateway.config_reader import TableReader

DOCUMENTS = ("si", "sl")
TRANSPORTS = ("smpp", "ppg")
CONCATENATION = ("udh8", "udh16")


@attrs.frozen(kw_only=True)
class WapSmscConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = attrs.field(default="", repr=False)  # never logged
    system_type: str = ""
    binds: int = 1
    window: int = 10
    rate: float = 0.0  # submit_sm/s for the account, 0 = uncapped
    request_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    source_addr: str = ""
    source_addr_ton: int = 5
    source_addr_npi: int = 0
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    registered_delivery: int = 1
    validity: float = 0.0  # seconds, 0 = the SMSC's default


@attrs.frozen(kw_only=True)
class PpgConfig:
    """An external Push Proxy Gateway reached with PAP 2.0 over HTTP (transport = "ppg")."""

    url: str = ""  # the PPG's PAP endpoint, e.g. "http://ppg.example.com:8080/pap"
    username: str = ""  # HTTP Basic authentication ("" = none)
    password: str = attrs.field(default="", repr=False)  # never logged
    address_domain: str = ""  # ppg-specifier after "@" in client addresses ("" = none)
    timeout: float = 10.0  # one HTTP exchange
    max_in_flight: int = 16  # push submissions at once
    deliver_within: float = 0.0  # deliver-before-timestamp this long after sending, 0 = none
    #: public URL for the PPG's result notifications ("" = not asked); a query in it
    #: (``?key=SECRET``) must come back with each notification, or it is refused (403)
    notify_url: str = attrs.field(default="", repr=False)

    @property
    def notify_path(self) -> str:
        return urlsplit(self.notify_url).path or "/"

    @property
    def notify_query(self) -> dict[str, str]:
        """The query of ``notify_url`` (e.g. ``?key=SECRET``): a notification must carry it."""
        return dict(parse_qsl(urlsplit(self.notify_url).query))


@attrs.frozen(kw_only=True)
class WapPushConfig:
    channel: str = "wap_push"
    document: str = "si"  # si: the handset shows the text and offers the link; sl: loads it
    si_action: SiAction = SiAction.SIGNAL_MEDIUM
    sl_action: SlAction = SlAction.EXECUTE_LOW
    si_expires_after: float = 0.0  # seconds after sending, 0 = no si-expires
    concatenation: str = "udh8"  # reference size of the concatenation element
    track_clicks: bool = False
    tracking_url: str = ""  # public URL of the tracking route, e.g. "https://gw.example.com/w"
    transport: str = "smpp"  # smpp: own SMPP binds | ppg: PAP 2.0 to a Push Proxy Gateway
    smsc: WapSmscConfig | None = None
    ppg: PpgConfig | None = None

    @property
    def enabled(self) -> bool:
        """Whether the channel runs: its transport's table is configured."""
        return (self.smsc if self.transport == "smpp" else self.ppg) is not None

    @property
    def tracking_path(self) -> str:
        return urlsplit(self.tracking_url).path or "/"


#: Keys that only take effect at the next start (the channel reads them when it starts).
RESTART_KEYS = (
    "channel",
    "document",
    "si_action",
    "sl_action",
    "si_expires_after",
    "concatenation",
    "track_clicks",
    "tracking_url",
    "transport",
    "smsc",
    "ppg",
)


def _smsc(r: TableReader) -> WapSmscConfig:
    d = WapSmscConfig()
    values: dict[str, Any] = dict(
        host=r.str("host", d.host),
        port=r.int("port", d.port, min=0, max=65535),
        system_id=r.str("system_id"),
        password=r.str("password", ""),
        system_type=r.str("system_type", ""),
        binds=r.int("binds", d.binds, min=1, max=16),
        window=r.int("window", d.window, min=1, max=1000),
        rate=r.float("rate", d.rate, min=0),
        request_timeout=r.duration("request_timeout", d.request_timeout, min=0.1),
        enquire_link_interval=r.duration("enquire_link_interval", d.enquire_link_interval, min=0),
        reconnect_min=r.duration("reconnect_min", d.reconnect_min, min=0.01),
        reconnect_max=r.duration("reconnect_max", d.reconnect_max, min=0.01),
        source_addr=r.str("source_addr", ""),
        source_addr_ton=r.int("source_addr_ton", d.source_addr_ton, min=0, max=6),
        source_addr_npi=r.int("source_addr_npi", d.source_addr_npi, min=0, max=18),
        dest_addr_ton=r.int("dest_addr_ton", d.dest_addr_ton, min=0, max=6),
        dest_addr_npi=r.int("dest_addr_npi", d.dest_addr_npi, min=0, max=18),
        registered_delivery=r.int("registered_delivery", d.registered_delivery, min=0, max=31),
        validity=r.duration("validity", d.validity, min=0, max=63 * 86400),
    )
    if values["system_id"] and len(values["system_id"]) > 15:
        r.problem("system_id", "must be at most 15 characters (SMPP 3.4)")
    if values["password"] and len(values["password"]) > 8:
        r.problem("password", "must be at most 8 characters (SMPP 3.4)")
    if (values["reconnect_max"] or 0) < (values["reconnect_min"] or 0):
        r.problem("reconnect_max", "must be at least reconnect_min")
    r.check_unknown()
    return WapSmscConfig(**values) if r.ok else d


def _http_url(r: TableReader, key: str, value: str) -> None:
    url = urlsplit(value or "")
    if url.scheme not in ("http", "https") or not url.netloc:
        r.problem(key, f"must be an http(s) URL, got {value!r}")


def _ppg(r: TableReader) -> PpgConfig:
    d = PpgConfig()
    values: dict[str, Any] = dict(
        url=r.str("url"),
        username=r.str("username", ""),
        password=r.str("password", ""),
        address_domain=r.str("address_domain", ""),
        timeout=r.duration("timeout", d.timeout, min=0.1),
        max_in_flight=r.int("max_in_flight", d.max_in_flight, min=1, max=1000),
        deliver_within=r.duration("deliver_within", 0.0, min=0),
        notify_url=r.str("notify_url", ""),
    )
    if values["url"] is not None:
        _http_url(r, "url", values["url"])
    if values["notify_url"]:
        _http_url(r, "notify_url", values["notify_url"])
    r.check_unknown()
    return PpgConfig(**values) if r.ok else d


def parse_wap_push_config(table: Mapping[str, Any], key: str = "plugins.wap_push") -> WapPushConfig:
    r = TableReader(table, key)
    d = WapPushConfig()
    channel = r.str("channel", d.channel)
    document = r.str("document", d.document, choices=DOCUMENTS)
    si_action = r.str("si_action", d.si_action.value, choices=tuple(a.value for a in SiAction))
    sl_action = r.str("sl_action", d.sl_action.value, choices=tuple(a.value for a in SlAction))
    expires = r.duration("si_expires_after", d.si_expires_after, min=0)
    concatenation = r.str("concatenation", d.concatenation, choices=CONCATENATION)
    track = r.bool("track_clicks", False)
    tracking_url = r.str("tracking_url", "")
    transport = r.str("transport", d.transport, choices=TRANSPORTS)
    smsc = _smsc(r.table("smsc")) if r.has("smsc") else None
    ppg = _ppg(r.table("ppg")) if r.has("ppg") else None
    if transport == "ppg" and ppg is None:
        r.problem("ppg", 'transport = "ppg" needs a [plugins.wap_push.ppg] table with url')
    if transport == "ppg" and smsc is not None:
        r.problem("smsc", 'not used with transport = "ppg": remove it or set transport = "smpp"')
    if transport == "smpp" and ppg is not None:
        r.problem("ppg", 'not used with transport = "smpp": set transport = "ppg" to use it')
    if track:
        url = urlsplit(tracking_url or "")
        if url.scheme not in ("http", "https") or not url.netloc:
            r.problem(
                "tracking_url",
                "track_clicks needs the public http(s) URL of the tracking route,"
                ' e.g. "https://gw.example.com/w" (served by [http] under its path)',
            )
        elif url.query or url.fragment:
            r.problem("tracking_url", "must have no query or fragment (the link adds ?t=TOKEN)")
    r.finish()
    return WapPushConfig(
        channel=channel,
        document=document,
        si_action=SiAction(si_action),
        sl_action=SlAction(sl_action),
        si_expires_after=expires,
        concatenation=concatenation,
        track_clicks=track,
        tracking_url=tracking_url,
        transport=transport,
        smsc=smsc,
        ppg=ppg,
    )
