"""The ``[twoway]`` section of gateway.toml (two-way SMS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from gateway.config_reader import TableReader

DEFAULT_CONFIRMATION = "您已成功退订本业务短信。You have been unsubscribed."


@attrs.frozen(kw_only=True)
class TwowayConfig:
    service_code: str = ""  # e.g. "10658000"; "" = no sub-codes (routing by latest offer only)
    sub_code_digits: int = 4  # digits appended per campaign
    offer_validity: float = 3 * 86400.0  # an offer is answerable this long (campaign may override)
    opt_out_scope: str = "global"  # "global" | "class": which list an opt-out reply adds to
    confirmation: str = DEFAULT_CONFIRMATION  # SMS text confirming an opt-out ("" = none)
    confirmation_channel: str = "sms"


def parse_twoway_config(table: Mapping[str, Any], key: str = "twoway") -> TwowayConfig:
    d = TwowayConfig()
    r = TableReader(table, key)
    code = r.str("service_code", d.service_code)
    if code and not code.isdigit():
        r.problem("service_code", f"digits only, got {code!r}")
    cfg = TwowayConfig(
        service_code=code or "",
        sub_code_digits=r.int("sub_code_digits", d.sub_code_digits, min=1, max=6),
        offer_validity=r.duration("offer_validity", d.offer_validity, min=1.0),
        opt_out_scope=r.str("opt_out_scope", d.opt_out_scope, choices=["global", "class"]),
        confirmation=r.str("confirmation", d.confirmation),
        confirmation_channel=r.str("confirmation_channel", d.confirmation_channel),
    )
    r.finish()
    return cfg
