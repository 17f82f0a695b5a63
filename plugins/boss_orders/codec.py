"""Request bodies and answers of BOSS webservice operations, SOAP 1.1 or JSON (no I/O).

An operation is described in gateway.toml (see :class:`~plugins.boss_orders.config.Operation`):

- SOAP 1.1 (https://www.w3.org/TR/2000/NOTE-SOAP-20000508/): the configured ``body`` is the
  XML of the operation element as the BOSS's WSDL describes it, with ``{field}`` placeholders
  (``gateway.rules.template``: no attribute access, unknown fields refused at start). Values
  are XML-escaped when inserted, so a subscriber's text cannot add elements. The body is put in
  a SOAP 1.1 envelope and sent with ``Content-Type: text/xml`` and the ``SOAPAction`` header.
  Answers: a ``soap:Fault`` is an error (``Client`` faults are final, the others retried);
  otherwise each wanted field is the text of the first element with that local name.
- JSON: the configured ``json`` table is the request document; its string values are templates,
  rendered and then serialised by ``json.dumps`` (a value can never break the document). Each
  wanted field of the answer is a dotted path (``result.code``).

Parsing uses the standard library's expat-based ElementTree, which resolves no external
entities and (expat >= 2.4.1) refuses entity-expansion bombs; answers are capped in size by
the client before they get here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from gateway.rules.template import Template

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


class AnswerError(ValueError):
    """The BOSS answered something we cannot read (not XML/JSON, a field missing)."""


class SoapFault(Exception):
    """The BOSS answered a SOAP Fault; ``client`` faults are the request's fault (final)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def client(self) -> bool:
        return self.code.rsplit(":", 1)[-1].startswith("Client")


def render_soap(body: Template, values: Mapping[str, Any]) -> bytes:
    """The SOAP 1.1 envelope around ``body`` rendered with XML-escaped ``values``."""

    def lookup(name: str) -> str | None:
        value = values.get(name)
        # a carriage return as a character reference: a parser turns a literal one (or a
        # CR LF) into a line feed, and the BOSS would get another value than ours
        return (
            None
            if value is None
            else escape(str(value), {'"': "&quot;", "'": "&apos;", "\r": "&#13;"})
        )

    inner = body.render(lookup)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>{inner}</soap:Body></soap:Envelope>'
    ).encode()


def render_json(document: Any, values: Mapping[str, Any]) -> bytes:
    """``document`` (a mapping whose leaves may be Templates) rendered and serialised."""

    def lookup(name: str) -> Any:
        return values.get(name)

    def walk(node: Any) -> Any:
        if isinstance(node, Template):
            return node.render(lookup)
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list | tuple):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(document), ensure_ascii=False).encode()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_soap(body: bytes, fields: Mapping[str, str]) -> dict[str, str]:
    """``{name: text}`` for each ``{name: element local name}``; SoapFault or AnswerError."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise AnswerError(f"not XML: {exc}") from None
    if _local(root.tag) != "Envelope":
        raise AnswerError(f"not a SOAP envelope (root element {_local(root.tag)!r})")
    for element in root.iter():
        if _local(element.tag) == "Fault":
            code = element.findtext("faultcode") or ""
            text = element.findtext("faultstring") or ""
            raise SoapFault(code.strip(), text.strip())
    found: dict[str, str] = {}
    wanted = {local: name for name, local in fields.items()}
    for element in root.iter():
        name = wanted.get(_local(element.tag))
        if name is not None and name not in found:
            found[name] = (element.text or "").strip()
    return found


def parse_json(body: bytes, fields: Mapping[str, str]) -> dict[str, str]:
    """``{name: value as text}`` for each ``{name: dotted path}`` present in the answer."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnswerError(f"not JSON: {exc}") from None
    found: dict[str, str] = {}
    for name, path in fields.items():
        node: Any = document
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None:
            found[name] = str(node).lower() if isinstance(node, bool) else str(node)
    return found


Parser = Callable[[bytes, Mapping[str, str]], dict[str, str]]
