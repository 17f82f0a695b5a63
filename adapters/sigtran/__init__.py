"""Decoding of GSM A-interface signaling (BSSAP over SCCP over SIGTRAN or SS7) from captures.

Sans-IO: bytes in, subscriber behaviour events out (:class:`~adapters.sigtran.decoder.Decoder`
feeding a :class:`~adapters.sigtran.correlate.Correlator`). No Trio, no logging, nothing from
``gateway`` or ``plugins``. :mod:`adapters.sigtran.build` and :mod:`adapters.sigtran.scenario`
are the encoders used by tests, benchmarks and the demo capture.
"""
