"""``[plugins.mms_mm7]``: the MMSC to submit to, our VASP identity, inbound credentials, limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from adapters.mm7 import RELEASES
from gateway.config_reader import TableReader

#: MMSC profiles: the OMA MMS content classes (OMA-MMS-CONF), message size in bytes and the
#: largest picture in pixels. ``max_message_bytes`` / ``max_image_size`` override them.
PROFILES: dict[str, tuple[int, tuple[int, int]]] = {
    "image-basic": (30 * 1024, (160, 120)),
    "image-rich": (100 * 1024, (640, 480)),
    "video-basic": (300 * 1024, (640, 480)),
    "megapixel": (300 * 1024, (1600, 1200)),
}
MESSAGE_CLASSES = ("Personal", "Informational", "Advertisement", "Auto")
CHARGED_PARTIES = ("Sender", "Recipient", "Both", "Neither", "ThirdParty")


@attrs.frozen(kw_only=True)
class MmsConfig:
    url: str = ""  # the MMSC's MM7 endpoint; empty: the channel is not registered
    channel: str = "mms"
    username: str = ""  # HTTP Basic towards the MMSC
    password: str = attrs.field(default="", repr=False)  # never logged
    release: str = "REL-6"  # MM7 schema release: REL-6 or REL-5
    vasp_id: str = ""
    vas_id: str = ""
    service_code: str = ""
    sender: str = ""  # our short code (digits) shown as the sender; empty: the MMSC's default
    message_class: str = "Advertisement"
    charged_party: str = "Sender"
    delivery_report: bool = True
    read_reply: bool = False
    expiry: float = 0.0  # seconds the MMSC keeps trying; 0 = its default
    timeout: float = 30.0  # per SubmitReq, connect to answer
    concurrency: int = 8  # SubmitReq in flight at once
    batch: int = 32  # messages taken from the outbox at once
    profile: str = "video-basic"
    max_message_bytes: int = 300 * 1024  # the MM (SMIL, text and pictures) as sent
    max_image_size: tuple[int, int] = (640, 480)  # width, height in pixels
    media_dir: str = ""  # relative picture paths resolve here; empty: the campaigns directory
    inbound_path: str = "/mm7"  # route on the core's HTTP host for the MMSC's requests
    inbound_username: str = ""  # HTTP Basic the MMSC must send; empty: not checked (warned)
    inbound_password: str = attrs.field(default="", repr=False)
    embedded_mmsc: bool = False  # DEMO ONLY: submit to an in-process fake MMSC (url ignored)
    embedded_report_delay: float = 1.0  # ... which reports each MMS retrieved this much later


def _size(r: TableReader, name: str, default: tuple[int, int]) -> tuple[int, int]:
    value = r.str(name, None)
    if value is None:
        return default
    width, sep, height = value.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or not int(width) or not int(height):
        r.problem(name, f'must be WIDTHxHEIGHT in pixels such as "640x480", got {value!r}')
        return default
    return int(width), int(height)


def parse_mms_config(table: Mapping[str, Any], key: str = "plugins.mms_mm7") -> MmsConfig:
    r = TableReader(table, key)
    d = MmsConfig()
    url = r.str("url", d.url)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            r.problem("url", f"must be an http:// or https:// URL, got {url!r}")
    profile = r.str("profile", d.profile, choices=sorted(PROFILES))
    size, pixels = PROFILES.get(profile or d.profile, PROFILES[d.profile])
    inbound_path = r.str("inbound_path", d.inbound_path)
    if inbound_path and not inbound_path.startswith("/"):
        r.problem("inbound_path", f"must start with /, got {inbound_path!r}")
    config = MmsConfig(
        url=url,
        channel=r.str("channel", d.channel),
        username=r.str("username", d.username),
        password=r.str("password", d.password),
        release=r.str("release", d.release, choices=sorted(RELEASES)),
        vasp_id=r.str("vasp_id", d.vasp_id),
        vas_id=r.str("vas_id", d.vas_id),
        service_code=r.str("service_code", d.service_code),
        sender=r.str("sender", d.sender),
        message_class=r.str("message_class", d.message_class, choices=MESSAGE_CLASSES),
        charged_party=r.str("charged_party", d.charged_party, choices=CHARGED_PARTIES),
        delivery_report=r.bool("delivery_report", d.delivery_report),
        read_reply=r.bool("read_reply", d.read_reply),
        expiry=r.duration("expiry", d.expiry, min=0),
        timeout=r.duration("timeout", d.timeout, min=0.01),
        concurrency=r.int("concurrency", d.concurrency, min=1, max=256),
        batch=r.int("batch", d.batch, min=1, max=10_000),
        profile=profile,
        max_message_bytes=r.int("max_message_bytes", size, min=1024),
        max_image_size=_size(r, "max_image_size", pixels),
        media_dir=r.str("media_dir", d.media_dir),
        inbound_path=inbound_path,
        inbound_username=r.str("inbound_username", d.inbound_username),
        inbound_password=r.str("inbound_password", d.inbound_password),
        embedded_mmsc=r.bool("embedded_mmsc", d.embedded_mmsc),
        embedded_report_delay=r.duration(
            "embedded_report_delay", d.embedded_report_delay, min=0, max=3600
        ),
    )
    if config.username and not config.password:
        r.problem("password", "is required with username (HTTP Basic towards the MMSC)")
    if config.inbound_username and not config.inbound_password:
        r.problem("inbound_password", "is required with inbound_username")
    r.finish()
    return config
