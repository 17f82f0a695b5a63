"""Contact control's records are kept as text (not tracked by the garbage collector); a state
change rewrites only the state field. Both read back as the record they store."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.contact.engine import COMMITTED, ENDED, EXPIRED, RESERVED, with_state
from gateway.contact.sqlite_backend import _Records

text = st.text(
    st.characters(blacklist_characters="\x1f\x1e", blacklist_categories=("Cs",)), max_size=12
)
record = st.tuples(
    text,  # contact id
    text,  # msisdn
    st.floats(allow_nan=False),  # at
    text,  # channel
    text,  # campaign
    text,  # class
    st.integers(-1000, 1000),  # priority
    st.floats(allow_nan=False),  # expires (inf: held in the outbox)
    st.sampled_from([RESERVED, COMMITTED, ENDED, EXPIRED]),
)


@given(record, st.sampled_from([RESERVED, COMMITTED, ENDED, EXPIRED]))
def test_a_record_and_its_state_change_read_back(rec, state) -> None:
    records = _Records()
    records[rec[0]] = rec
    assert records.get(rec[0]) == rec
    changed = records.set_state(records.get(rec[0]), state)
    assert changed == with_state(rec, state)
    assert records.get(rec[0]) == changed


@given(record)
def test_fields_given_as_text_read_back_as_the_record(rec) -> None:
    """What a batch's reservations store (time, expiry and state formatted once)."""
    from gateway.contact.sqlite_backend import _FS

    records = _Records()
    cid, msisdn, at, channel, campaign, cls, priority, expires, state = rec
    tail = _FS.join((repr(expires), str(state)))
    records.put_fields(cid, (msisdn, repr(at), channel, campaign, cls, str(priority), tail))
    assert records.get(cid) == rec
