"""Property tests of the SPML codec: any bytes parse or raise SpmlError; built requests round-trip."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from gateway.staff import spml

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=20)
VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
).map(str.strip)


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_spml_error(data):
    """Arbitrary bytes give a request or SpmlError, never another exception."""
    try:
        spml.parse_request(data)
    except spml.SpmlError as exc:
        assert exc.code in (spml.MALFORMED, spml.UNSUPPORTED)


def build_add(pso: str, attrs: dict[str, list[str]], soap: bool) -> bytes:
    """An addRequest built with ElementTree (not with our codec)."""
    ns = spml.SPML_NS
    request = ET.Element(f"{{{ns}}}addRequest", requestID="r")
    ET.SubElement(request, f"{{{ns}}}psoID", ID=pso)
    data = ET.SubElement(request, f"{{{ns}}}data")
    for name, values in attrs.items():
        attr = ET.SubElement(data, f"{{{ns}}}attr", name=name)
        for value in values:
            ET.SubElement(attr, f"{{{ns}}}value").text = value
    root = request
    if soap:
        root = ET.Element(f"{{{spml.SOAP_NS}}}Envelope")
        ET.SubElement(root, f"{{{spml.SOAP_NS}}}Body").append(request)
    return ET.tostring(root, encoding="utf-8")


@given(
    NAME,
    st.dictionaries(
        NAME.filter(lambda n: n != "objectclass"), st.lists(VALUE, max_size=3), max_size=5
    ),
    st.booleans(),
)
def test_add_requests_round_trip(pso, attrs, soap):
    """Every attribute and value of a well-formed addRequest is read back as sent."""
    request = spml.parse_request(build_add(pso, attrs, soap))
    assert (request.operation, request.pso_id, request.soap) == ("add", pso, soap)
    assert {k: list(v) for k, v in request.data.items()} == attrs


@given(
    st.sampled_from(spml.OPERATIONS),
    NAME,
    st.booleans(),
    st.one_of(st.none(), st.sampled_from([spml.MALFORMED, spml.NO_SUCH])),
)
def test_responses_are_well_formed(operation, pso, soap, error):
    """Responses parse as XML and carry the status the caller asked for."""
    root = ET.fromstring(
        spml.build_response(
            operation, request_id="7", pso_id=pso, error=error, message="m", soap=soap
        )
    )
    if soap:
        root = root[0][0]
    assert root.tag == f"{{{spml.SPML_NS}}}{operation}Response"
    assert root.get("status") == ("failure" if error else "success")
    assert root.get("error") == error
