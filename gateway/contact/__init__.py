"""The contact-control core: lists, contact hours, caps, reservations, the ledger.

No contact reaches a channel without a decision here. :mod:`.engine` holds the pure rules,
:mod:`.sqlite_backend` and :mod:`.redis_backend` the counters, :mod:`.ledger` the record,
:mod:`.plugin` the hooks that put it into the daemon.
"""
