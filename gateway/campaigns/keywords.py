"""Reply keywords of two-way SMS, folded to one form before they are compared.

Handsets send "y", "Y", a full-width Y (U+FF39), " 是 " or "TD。": :func:`fold` applies Unicode NFKC
(full-width letters and digits become ASCII), upper-cases, and drops surrounding white space
and punctuation, so a keyword configured as ``"Y"`` or ``"退订"`` matches all of them.
"""

from __future__ import annotations

import unicodedata

# after NFKC: full-width punctuation is ASCII already; the ideographic stop and comma are not
_TRIM = " \t\r\n.,!?;:\"'()[]\u3001\u3002"


def fold(text: str) -> str:
    """The comparable form of a reply or a keyword."""
    return unicodedata.normalize("NFKC", text).strip().strip(_TRIM).strip().upper()
