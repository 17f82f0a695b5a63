"""``shard = "INDEX/COUNT"``: how several gateway nodes split one feed between them.

The signaling sources shard by IMSI and batch campaigns by MSISDN, each with CRC-32 of the
digits modulo ``COUNT`` (identical on every node and every restart; Python's ``hash`` is salted
per process). This module holds the one spelling of the setting both read.
"""

from __future__ import annotations

import re

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``(index, count)`` from ``"INDEX/COUNT"`` (1-based index); ValueError with the reason."""
    m = _SHARD.match(text)
    if not m:
        raise ValueError(f'expected "INDEX/COUNT" such as "2/4", got {text!r}')
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"index must be between 1 and the count, got {text!r}")
    return index, count
