"""Content templates with subscriber fields: ``"Dear {brand|customer}, welcome to {area}"``.

``{name}`` inserts a field, ``{name|fallback}`` gives the text used when the field is
missing or empty (else the empty string), ``{{`` and ``}}`` are literal braces. Unlike
``str.format`` there is no attribute or index access, so a template cannot reach into
objects; unknown field names are refused when the campaign is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

_FIELD = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]*)(?:\|([^{}]*))?\}|[{}]")


class TemplateError(ValueError):
    """Raised when a template is malformed or names an unknown field."""


class Template:
    """A compiled template: literal parts and ``(field, fallback)`` pairs."""

    __slots__ = ("fields", "parts", "text")

    def __init__(self, text: str, known_fields: Collection[str]) -> None:
        self.text = text
        parts: list[str | tuple[str, str]] = []
        pos = 0
        for m in _FIELD.finditer(text):
            parts.append(text[pos : m.start()])
            token = m.group(0)
            if token in ("{{", "}}"):
                parts.append(token[0])
            elif m.group(1) is None:
                raise TemplateError(
                    f"unmatched {token!r} at position {m.start()} (write {token * 2} for a literal brace)"
                )
            else:
                name = m.group(1)
                if name not in known_fields:
                    raise TemplateError(
                        f"unknown field {{{name}}}; known fields: {', '.join(sorted(known_fields))}"
                    )
                parts.append((name, m.group(2) or ""))
            pos = m.end()
        parts.append(text[pos:])
        self.parts = tuple(p for p in parts if p != "")
        self.fields = frozenset(p[0] for p in self.parts if isinstance(p, tuple))

    def render(self, lookup: Callable[[str], Any]) -> str:
        """Fill fields with ``lookup(name)``; None, empty or a failing lookup uses the fallback."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                value = lookup(part[0])
            except Exception:  # a missing field must never stop a contact
                value = None
            if value is None or value == "":
                out.append(part[1])
            elif isinstance(value, frozenset | set):
                out.append(",".join(sorted(value)))
            else:
                out.append(str(value))
        return "".join(out)
