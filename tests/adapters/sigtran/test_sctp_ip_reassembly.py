"""SCTP user-message and IPv4 fragment reassembly: any arrival order, bounded state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.sigtran import build as W
from adapters.sigtran.link import Ipv4Reassembler
from adapters.sigtran.sctp import SctpReassembler


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=400),
    st.integers(1, 50),
    st.randoms(use_true_random=False),
    st.integers(0, 2**32 - 1),
)
def test_sctp_fragments_in_any_order_give_the_message_once(message, size, rnd, first_tsn):
    """Fragments of one message, shuffled (TSNs may wrap), rebuild it exactly once."""
    parts = [message[i : i + size] for i in range(0, len(message), size)]
    frags = []
    for i, part in enumerate(parts):
        flags = (2 if i == 0 else 0) | (1 if i == len(parts) - 1 else 0)
        frags.append(((first_tsn + i) & 0xFFFFFFFF, flags, part))
    rnd.shuffle(frags)
    counts = []
    r = SctpReassembler(lambda layer, reason: counts.append(reason))
    results = [r.add(("k",), tsn, flags, data) for tsn, flags, data in frags]
    whole = [x for x in results if x is not None]
    if len(parts) <= 64:
        assert whole == [message] and len(r) == 0
    else:
        assert whole == [] and "reassembly_too_many_fragments" in counts


def test_sctp_pending_messages_are_bounded():
    """Beyond max_pending partial messages the oldest is dropped and counted."""
    counts = []
    r = SctpReassembler(lambda layer, reason: counts.append(reason), max_pending=3)
    for stream in range(10):
        assert r.add(("k", stream), 1, 2, b"begin") is None
    assert len(r) == 3 and counts.count("reassembly_evicted") == 7


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=30, max_size=1500), st.integers(1, 20), st.randoms(use_true_random=False))
def test_ipv4_fragments_in_any_order_give_the_datagram(payload, eighths, rnd):
    """IPv4 fragments, shuffled, rebuild the original datagram's payload."""
    src, dst = b"\x0a\0\0\x01", b"\x0a\0\0\x02"
    frags = W.ipv4_fragments(src, dst, payload, ident=77, size=8 * eighths)
    rnd.shuffle(frags)
    r = Ipv4Reassembler()
    out = []
    for frag in frags:
        flags = int.from_bytes(frag[6:8], "big")
        whole = r.add(0.0, frag, 0, 20, len(frag), flags) if flags & 0x3FFF else frag
        if whole is not None:
            out.append(whole)
    assert len(out) == 1 and out[0][20:] == payload and len(r) == 0


def test_ipv4_reassembly_is_bounded_and_expires():
    """At most max_datagrams in flight; stale ones are dropped when room is needed."""
    r = Ipv4Reassembler(max_datagrams=2, timeout=5.0)
    for ident in range(5):
        first = W.ipv4_fragments(b"\1\1\1\1", b"\2\2\2\2", bytes(64), ident=ident, size=16)[0]
        assert r.add(float(ident * 10), first, 0, 20, len(first), 0x2000) is None
    assert len(r) <= 2 and r.dropped >= 3


def _held(pending) -> int:
    return sum(len(piece) for entry in pending.values() for piece in entry[2].values())


def test_ipv4_overlapping_fragments_cannot_hold_more_than_a_datagram():
    """Overlapping fragments (each within 64 KiB, at every offset) hold at most max_bytes."""
    import struct

    r = Ipv4Reassembler()
    dropped = 0
    for eighth in range(0, 2000):
        payload = bytes(60_000 - 8 * eighth)
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(payload),
            7,
            0x2000 | eighth,
            64,
            132,
            0,
            b"\1\1\1\1",
            b"\2\2\2\2",
        )
        frame = header + payload
        try:
            r.add(0.0, frame, 0, 20, len(frame), 0x2000 | eighth)
        except ValueError:
            dropped += 1
        assert _held(r._pending) <= r.max_bytes
    assert dropped


def test_sctp_partial_message_holds_at_most_max_message():
    """Middle fragments that never complete hold at most max_message octets per key."""
    counts = []
    r = SctpReassembler(lambda layer, reason: counts.append(reason), max_message=10_000)
    for tsn in range(1, 60):
        r.add(("k",), tsn, 0, bytes(4000))  # neither B nor E: never completes
        assert sum(len(d) for _, d in r._pending.get(("k",), {}).values()) <= 10_000
    assert "message_too_large" in counts
