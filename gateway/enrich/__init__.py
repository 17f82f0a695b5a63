"""Enrichment of signaling events with the operator's reference tables.

- :mod:`gateway.enrich.segments`: number segment (7-digit MSISDN prefix) and fixed-line
  area code -> home province and city;
- :mod:`gateway.enrich.tac`: IMEI type allocation code -> handset brand, model, capabilities;
- :mod:`gateway.enrich.holder`: the tables in force (atomic reload) and the local region;
- :mod:`gateway.enrich.plugin`: the ``[enrichment]`` section, loading, reload, the
  ``gatewayctl enrichment`` command.

The rule conditions ``visitor``, ``peer_region``, ``long_distance`` and ``capability``
(:mod:`gateway.rules.conditions`) read them; see docs/rules.md.
"""

from gateway.enrich.csvfile import TableFileError
from gateway.enrich.holder import Enrichment
from gateway.enrich.segments import Region, SegmentTable, load_segments
from gateway.enrich.tac import Handset, TacTable, load_tac

__all__ = [
    "Enrichment",
    "Handset",
    "Region",
    "SegmentTable",
    "TableFileError",
    "TacTable",
    "load_segments",
    "load_tac",
]
