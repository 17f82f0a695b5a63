"""SMPP 3.4 for the SMS channel: sans-IO codecs and session state, and a thin Trio transport.

- :mod:`.gsm0338`: the GSM 03.38 default alphabet, septet packing (3GPP TS 23.038).
- :mod:`.messages`: text and binary messages to submit_sm segments (concatenation UDH,
  message_payload) and back, with reassembly of long messages (3GPP TS 23.040 9.2.3.24).
- :mod:`.receipt`: delivery receipt (DLR) text and TLVs (SMPP 3.4 Appendix B), message-id forms.
- :mod:`.protocol`: PDU framing and the ESME session state machine (SMPP 3.4 section 2, 4).
- :mod:`.fastpdu`: submit_sm, deliver_sm and their responses without smpplib objects,
  byte-identical to smpplib (property-tested); smpplib serves every other PDU.
- :mod:`.ratelimit`: token buckets.

Those are the pure codecs: no trio import, no I/O, no logging. The Trio transport is thin and
says so in its module docstrings:

- :mod:`.account`: what the binds of one SMSC account share (queue, rate, AIMD throttling,
  per-destination queue-full retries, query_sm).
- :mod:`.transport`: the Trio binds (connect, TLS, window, timeouts, enquire_link, reconnect).
- :mod:`.simulator`: an SMSC simulator speaking real SMPP over TCP, for tests and demos.

Nothing here imports from ``gateway`` or ``plugins``.
"""
