"""How a call ended, from its CC cause (TS 24.008 10.5.4.11, table 10.5.123) and its course.

The outcome names are :class:`gateway.model.CallOutcome` values; campaigns key on them
("three rejected incoming calls in an hour"). The rules, in order:

1. A call that was connected (CC Connect seen) is ``answered``, whatever the cause: its
   duration is the talk time.
2. Otherwise the first cause of the clearing (Disconnect, else Release, else Release Complete):

   ========================  ==================================================================
   cause                     outcome
   ========================  ==================================================================
   1 unassigned number,      ``unallocated_number``
   3 no route to dest.,
   22 number changed,
   28 invalid number format
   17 user busy              ``busy`` on an MO call (the called party is busy); ``rejected`` on
                             an MT call (handsets send 17 when the subscriber declines)
   21 call rejected          ``rejected`` (MT: by the subscriber; MO: by the called party)
   16 normal clearing,       ``no_answer`` (before Connect: the caller gave up or nobody answered)
   18 no user responding,
   19 no answer (alerted),
   20 subscriber absent,
   31 normal, unspecified
   any other (27, 34-47      ``network_failure`` (destination out of order, no circuit, network
   resources, 63+ service,   or switching failure, congestion, protocol errors)
   95+ protocol, 127)
   ========================  ==================================================================

3. No CC cause at all (the BSC cleared the connection, TS 48.008 Clear Request, e.g. BSSMAP
   cause 0x01 radio interface failure; or the release came without any CC clearing):
   ``network_failure``.
"""

from __future__ import annotations

ANSWERED = "answered"
REJECTED = "rejected"
NO_ANSWER = "no_answer"
BUSY = "busy"
UNALLOCATED_NUMBER = "unallocated_number"
NETWORK_FAILURE = "network_failure"

_BY_CAUSE = {
    1: UNALLOCATED_NUMBER,
    3: UNALLOCATED_NUMBER,
    22: UNALLOCATED_NUMBER,
    28: UNALLOCATED_NUMBER,
    21: REJECTED,
    16: NO_ANSWER,
    18: NO_ANSWER,
    19: NO_ANSWER,
    20: NO_ANSWER,
    31: NO_ANSWER,
}


def call_outcome(*, answered: bool, cause: int | None, mobile_terminated: bool) -> str:
    """The outcome of one call; see the module docstring for the table."""
    if answered:
        return ANSWERED
    if cause is None:
        return NETWORK_FAILURE
    if cause == 17:
        return REJECTED if mobile_terminated else BUSY
    return _BY_CAUSE.get(cause, NETWORK_FAILURE)
