"""What the gateway reads from the BOSS's WSDL 1.1: each operation's SOAPAction and the
service address (https://www.w3.org/TR/2001/NOTE-wsdl-20010315, sections 2 and 3).

Only the SOAP 1.1 binding is read (``soap:operation/@soapAction``, ``soap:address/@location``);
the request body stays a configured template (the operation element), checked against the
WSDL's schema in the tests with an independent validator.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import attrs

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING_NS = "http://schemas.xmlsoap.org/wsdl/soap/"


class WsdlError(ValueError):
    """The WSDL cannot be read, or has no SOAP 1.1 binding."""


@attrs.frozen(kw_only=True)
class WsdlService:
    #: operation name -> SOAPAction
    actions: dict[str, str]
    #: the first soap:address location ("" if none)
    address: str = ""


def read_wsdl(path: Path) -> WsdlService:
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise WsdlError(f"cannot read {path}: {exc}") from None
    if root.tag != f"{{{WSDL_NS}}}definitions":
        raise WsdlError(f"{path} is not a WSDL 1.1 document (root {root.tag!r})")
    actions: dict[str, str] = {}
    for binding in root.iter(f"{{{WSDL_NS}}}binding"):
        if binding.find(f"{{{SOAP_BINDING_NS}}}binding") is None:
            continue  # SOAP 1.2 or HTTP bindings are not ours
        for op in binding.iter(f"{{{WSDL_NS}}}operation"):
            soap_op = op.find(f"{{{SOAP_BINDING_NS}}}operation")
            if op.get("name") and soap_op is not None:
                actions.setdefault(op.get("name", ""), soap_op.get("soapAction", ""))
    if not actions:
        raise WsdlError(f"{path} has no SOAP 1.1 binding operations")
    address = root.find(f".//{{{WSDL_NS}}}port/{{{SOAP_BINDING_NS}}}address")
    return WsdlService(
        actions=actions, address=address.get("location", "") if address is not None else ""
    )
