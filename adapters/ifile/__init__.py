"""Interface files exchanged with BOSS/CRM and the analytics system.

The operator convention: a *data file* of delimited records plus a *check file* that names it
and states its record count, byte size and checksum. :mod:`.checkfile` and :mod:`.records` are
sans-IO (bytes in, values out; no trio, no logging); :mod:`.transfer` is the thin Trio layer
that moves files between a local directory, FTP and SFTP servers.
"""

from adapters.ifile.checkfile import (
    ALGORITHMS,
    CheckFile,
    CheckFileError,
    FileTally,
    compare,
)
from adapters.ifile.records import RecordError, RecordLayout, split_records

__all__ = [
    "ALGORITHMS",
    "CheckFile",
    "CheckFileError",
    "FileTally",
    "RecordError",
    "RecordLayout",
    "compare",
    "split_records",
]
