"""Protocol codecs and clients for the outside world (sans-IO where the protocol allows)."""
