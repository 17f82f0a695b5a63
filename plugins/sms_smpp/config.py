"""``[plugins.sms_smpp]`` and its ``[[plugins.sms_smpp.smsc]]`` tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from adapters.smpp.messages import CODINGS, LONG_MODES
from adapters.smpp.receipt import ID_FORMS
from gateway.config_reader import TableReader
from gateway.errors import ConfigError

#: transceiver: one bind both ways; transmitter: submits only (receipts come on a receiver
#: entry with the same host and system_id); receiver: receipts and MO only (never routed to);
#: transmitter_receiver: a transmitter and a receiver bind per ``binds``.
BIND_MODES = ("transceiver", "transmitter", "receiver", "transmitter_receiver")
RECEIPT_ID_FORMS = tuple(ID_FORMS)


@attrs.frozen(kw_only=True)
class SmscConfig:
    name: str
    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = attrs.field(default="", repr=False)  # never logged
    system_type: str = ""
    bind_mode: str = "transceiver"
    binds: int = 1
    window: int = 10
    rate: float = 0.0  # submit_sm/s for the account (all binds), 0 = uncapped
    bind_rate: float = 0.0  # submit_sm/s per bind, 0 = uncapped
    enquire_link_interval: float = 30.0
    request_timeout: float = 10.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    throttle_delay: float = 0.5
    queue_full_retries: int = 3  # ESME_RMSGQFUL: retries of one message before it is rejected
    queue_full_delay: float = 30.0  # seconds before each of those retries
    receipt_timeout: float = 0.0  # seconds without a receipt before query_sm / unknown; 0 = wait
    query_sm: bool = False  # the SMSC answers query_sm: ask it when a receipt is late
    tls: bool = False
    tls_ca_file: str = ""
    tls_verify: bool = True
    source_addr: str = ""
    source_addr_ton: int = 5  # alphanumeric
    source_addr_npi: int = 0
    dest_addr_ton: int = 1  # international
    dest_addr_npi: int = 1  # E.164
    registered_delivery: int = 1  # ask for a receipt on final state
    validity: float = 0.0  # seconds, 0 = the SMSC's default
    priority: int = 0
    service_type: str = ""
    data_coding: str = "auto"
    gsm_packed: bool = False
    long_message: str = "udh8"
    routes: tuple[str, ...] = ()  # destination prefixes; empty = default route
    receipt_id: str = "as_is"  # as_is | hex_to_dec | dec_to_hex: receipt ids vs submit_sm_resp ids


@attrs.frozen(kw_only=True)
class SmsConfig:
    channel: str = "sms"
    smsc: tuple[SmscConfig, ...] = ()
    prefetch: int = 0  # messages taken from the outbox ahead of the binds; 0 = automatic
    mo_reassembly_timeout: float = 300.0
    embedded_simulator: bool = False  # demo only: start the bundled SMSC simulator
    simulator_port: int = 0
    simulator_receipt_delay: float = 1.0


def parse_smsc(r: TableReader, index: int) -> SmscConfig | None:
    d = SmscConfig(name="")
    name = r.str("name", f"smsc{index}")
    values: dict[str, Any] = dict(
        name=name,
        host=r.str("host", d.host),
        port=r.int("port", d.port, min=0, max=65535),
        system_id=r.str("system_id"),
        password=r.str("password", ""),
        system_type=r.str("system_type", ""),
        bind_mode=r.str("bind_mode", d.bind_mode, choices=BIND_MODES),
        binds=r.int("binds", d.binds, min=1, max=64),
        window=r.int("window", d.window, min=1, max=1000),
        rate=r.float("rate", d.rate, min=0),
        bind_rate=r.float("bind_rate", d.bind_rate, min=0),
        enquire_link_interval=r.duration("enquire_link_interval", d.enquire_link_interval, min=0),
        request_timeout=r.duration("request_timeout", d.request_timeout, min=0.1),
        reconnect_min=r.duration("reconnect_min", d.reconnect_min, min=0.01),
        reconnect_max=r.duration("reconnect_max", d.reconnect_max, min=0.01),
        throttle_delay=r.duration("throttle_delay", d.throttle_delay, min=0.001),
        queue_full_retries=r.int("queue_full_retries", d.queue_full_retries, min=0, max=100),
        queue_full_delay=r.duration("queue_full_delay", d.queue_full_delay, min=0.001),
        receipt_timeout=r.duration("receipt_timeout", d.receipt_timeout, min=0),
        query_sm=r.bool("query_sm", d.query_sm),
        tls=r.bool("tls", d.tls),
        tls_ca_file=r.str("tls_ca_file", ""),
        tls_verify=r.bool("tls_verify", True),
        source_addr=r.str("source_addr", ""),
        source_addr_ton=r.int("source_addr_ton", d.source_addr_ton, min=0, max=6),
        source_addr_npi=r.int("source_addr_npi", d.source_addr_npi, min=0, max=18),
        dest_addr_ton=r.int("dest_addr_ton", d.dest_addr_ton, min=0, max=6),
        dest_addr_npi=r.int("dest_addr_npi", d.dest_addr_npi, min=0, max=18),
        registered_delivery=r.int("registered_delivery", d.registered_delivery, min=0, max=31),
        validity=r.duration("validity", d.validity, min=0, max=63 * 86400),
        priority=r.int("priority", d.priority, min=0, max=3),
        service_type=r.str("service_type", ""),
        data_coding=r.str("data_coding", d.data_coding, choices=CODINGS),
        gsm_packed=r.bool("gsm_packed", False),
        long_message=r.str("long_message", d.long_message, choices=LONG_MODES),
        routes=r.str_list("routes", ()),
        receipt_id=r.str("receipt_id", d.receipt_id, choices=RECEIPT_ID_FORMS),
    )
    if values["system_id"] and len(values["system_id"]) > 15:
        r.problem("system_id", "must be at most 15 characters (SMPP 3.4)")
    if values["password"] and len(values["password"]) > 8:
        r.problem("password", "must be at most 8 characters (SMPP 3.4)")
    if values["routes"] and not all(x.isdigit() for x in values["routes"]):
        r.problem("routes", 'must be digit prefixes of international numbers, e.g. "86138"')
    if values["bind_mode"] == "receiver" and values["routes"]:
        r.problem("routes", "a receiver bind sends nothing: routes belong to its transmitter")
    if values["query_sm"] and not values["receipt_timeout"]:
        r.problem("query_sm", "needs receipt_timeout (when to ask for a receipt that is late)")
    if (values["reconnect_max"] or 0) < (values["reconnect_min"] or 0):
        r.problem("reconnect_max", "must be at least reconnect_min")
    r.check_unknown()
    if not r.ok:
        return None
    return SmscConfig(**values)


def parse_sms_config(table: Mapping[str, Any], key: str = "plugins.sms_smpp") -> SmsConfig:
    r = TableReader(table, key)
    d = SmsConfig()
    channel = r.str("channel", d.channel)
    prefetch = r.int("prefetch", 0, min=0, max=100_000)
    mo_timeout = r.duration("mo_reassembly_timeout", d.mo_reassembly_timeout, min=1)
    embedded = r.bool("embedded_simulator", False)
    sim_port = r.int("simulator_port", 0, min=0, max=65535)
    sim_delay = r.duration("simulator_receipt_delay", d.simulator_receipt_delay, min=0)
    smscs = [parse_smsc(t, i) for i, t in enumerate(r.tables("smsc"))]
    names = [s.name for s in smscs if s is not None]
    if len(set(names)) != len(names):
        r.problem("smsc", "names must be unique")
    defaults = [
        s.name for s in smscs if s is not None and not s.routes and s.bind_mode != "receiver"
    ]
    if len(defaults) > 1:
        r.problem(
            "smsc",
            f"at most one SMSC without routes (the default route); found {', '.join(defaults)}",
        )
    r.finish()
    if any(s is None for s in smscs):  # pragma: no cover - finish() raised already
        raise ConfigError([])
    return SmsConfig(
        channel=channel,
        smsc=tuple(smscs),
        prefetch=prefetch,
        mo_reassembly_timeout=mo_timeout,
        embedded_simulator=embedded,
        simulator_port=sim_port,
        simulator_receipt_delay=sim_delay,
    )


def relative_validity(seconds: float) -> str:
    """SMPP relative time "YYMMDDhhmmss000R" (SMPP 3.4 7.1.1) for a duration."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{s:02d}000R"
