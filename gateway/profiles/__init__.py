"""Subscriber profiles: a compact in-memory index keyed by IMSI and MSISDN.

Static attributes come from a BOSS file (:func:`load_profiles`); dynamic ones (last cell,
last IMEI, last seen) are learned from signaling by the pipeline. :class:`ProfileHolder` is
what the core hangs on ``gateway.profiles``: it swaps in a new index atomically after a
successful load and keeps the old one when a file is rejected.
"""

from gateway.profiles.holder import ProfileHolder
from gateway.profiles.index import ProfileIndex, ProfileView, cell_name, digits_key, pack_cell
from gateway.profiles.loader import ProfileFileError, load_profiles

__all__ = [
    "ProfileFileError",
    "ProfileHolder",
    "ProfileIndex",
    "ProfileView",
    "cell_name",
    "digits_key",
    "load_profiles",
    "pack_cell",
]
