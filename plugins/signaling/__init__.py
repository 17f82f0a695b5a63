"""Signaling sources: A-interface captures (pcap directory, live interface) and XDR records.

Each source is its own plugin module with its own entry point and config section:

- :mod:`plugins.signaling.pcap_dir` (``signaling_pcap``): capture files rotated into a directory;
- :mod:`plugins.signaling.live` (``signaling_live``): an AF_PACKET socket on an interface;
- :mod:`plugins.signaling.xdr` (``signaling_xdr``): delimited XDR records over TCP and in files.

They share the decoder (:mod:`adapters.sigtran`) and the helpers here (:mod:`.config` for
sharding and correlation limits, :mod:`.events` for SignalEvent and counters, :mod:`.spool`
for the directory handling).
"""
