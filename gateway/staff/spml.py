"""SPML-style provisioning requests from 4A, and the answers in kind (sans-IO).

Operator 4A platforms push account changes as OASIS SPML 2.0 requests (``addRequest``,
``modifyRequest``, ``deleteRequest``, namespace ``urn:oasis:names:tc:SPML:2:0``), bare or in
a SOAP 1.1 envelope. The answer is the matching ``...Response`` with ``status="success"`` or
``status="failure"`` plus an ``error`` code from SPML 2.0 section 3.1.2.2, in the same
wrapping as the request. Attributes are carried as ``<data><attr name="x"><value>..`` (the
DSML profile); a modification is ``<modification modificationMode="replace|add|delete">``.

The object kind is the ``objectclass`` attribute (``account``, the default, or
``organisation``). Parsing uses the standard library's expat, which refuses external
entities and (expat 2.4.1+) entity expansion attacks; bodies are capped by the caller.
No I/O, no logging.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping

import attrs

SPML_NS = "urn:oasis:names:tc:SPML:2:0"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
OPERATIONS = ("add", "modify", "delete")
#: SPML 2.0 error codes used in failure responses
MALFORMED = "malformedRequest"
UNSUPPORTED = "unsupportedOperation"
NO_SUCH = "noSuchIdentifier"
ALREADY_EXISTS = "alreadyExists"
CUSTOM = "customError"


class SpmlError(ValueError):
    """The request is not one we understand; ``code`` is the SPML error to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@attrs.frozen(kw_only=True)
class Modification:
    mode: str  # replace | add | delete
    attrs: Mapping[str, tuple[str, ...]]


@attrs.frozen(kw_only=True)
class SpmlRequest:
    operation: str  # add | modify | delete
    request_id: str
    pso_id: str
    objectclass: str  # account | organisation
    data: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    modifications: tuple[Modification, ...] = ()
    soap: bool = False


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _attrs_of(data: ET.Element | None) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    if data is None:
        return out
    for attr in data:
        if _local(attr.tag) != "attr":
            continue
        name = attr.get("name")
        if not name:
            raise SpmlError(MALFORMED, "an <attr> has no name")
        values = tuple((v.text or "").strip() for v in attr if _local(v.tag) == "value")
        out[name] = out.get(name, ()) + values
    return out


def parse_request(body: bytes) -> SpmlRequest:
    """One SPML request (bare or in a SOAP envelope). Raises SpmlError."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise SpmlError(MALFORMED, f"not well-formed XML: {exc}") from None
    soap = False
    if _local(root.tag) == "Envelope":
        soap = True
        body_el = _child(root, "Body")
        if body_el is None or len(body_el) == 0:
            raise SpmlError(MALFORMED, "SOAP envelope without a body")
        root = body_el[0]
    name = _local(root.tag)
    if not name.endswith("Request") or name[: -len("Request")] not in OPERATIONS:
        raise SpmlError(UNSUPPORTED, f"unsupported request <{name}>")
    operation = name[: -len("Request")]
    pso = _child(root, "psoID")
    pso_id = (pso.get("ID") or "").strip() if pso is not None else ""
    data = _attrs_of(_child(root, "data"))
    if not pso_id and operation == "add":
        pso_id = (data.get("id") or ("",))[0]
    if not pso_id:
        raise SpmlError(MALFORMED, "no <psoID ID=...> names the object")
    modifications: list[Modification] = []
    for child in root:
        if _local(child.tag) != "modification":
            continue
        mode = child.get("modificationMode", "replace")
        if mode not in ("replace", "add", "delete"):
            raise SpmlError(MALFORMED, f"modificationMode {mode!r}")
        modifications.append(Modification(mode=mode, attrs=_attrs_of(_child(child, "data"))))
    if operation == "modify" and not modifications:
        raise SpmlError(MALFORMED, "a modifyRequest without <modification>")
    objectclass = (data.get("objectclass") or ("account",))[0]
    if pso is not None and pso.get("targetID") in ("organisation", "account"):
        objectclass = pso.get("targetID") or objectclass
    if objectclass not in ("account", "organisation"):
        raise SpmlError(UNSUPPORTED, f"objectclass {objectclass!r}")
    return SpmlRequest(
        operation=operation,
        request_id=root.get("requestID", ""),
        pso_id=pso_id,
        objectclass=objectclass,
        data=data,
        modifications=tuple(modifications),
        soap=soap,
    )


def build_response(
    operation: str,
    *,
    request_id: str = "",
    pso_id: str = "",
    error: str | None = None,
    message: str = "",
    soap: bool = False,
) -> bytes:
    """The ``<{operation}Response>`` answering a request (``error`` None means success)."""
    ET.register_namespace("", SPML_NS)
    tag = f"{operation}Response" if operation in OPERATIONS else "response"
    response = ET.Element(f"{{{SPML_NS}}}{tag}")
    response.set("status", "failure" if error else "success")
    if request_id:
        response.set("requestID", request_id)
    if error:
        response.set("error", error)
        if message:
            ET.SubElement(response, f"{{{SPML_NS}}}errorMessage").text = message
    elif pso_id and operation != "delete":
        pso = ET.SubElement(response, f"{{{SPML_NS}}}pso")
        ET.SubElement(pso, f"{{{SPML_NS}}}psoID").set("ID", pso_id)
    root = response
    if soap:
        ET.register_namespace("soap", SOAP_NS)
        root = ET.Element(f"{{{SOAP_NS}}}Envelope")
        ET.SubElement(root, f"{{{SOAP_NS}}}Body").append(response)
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode").encode()
    )
