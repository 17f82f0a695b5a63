"""WAP Push over SMS: sans-IO codecs for the WAP Push channel.

- :mod:`.wbxml`: Service Indication (WAP-167) and Service Loading (WAP-168) in WBXML (WAP-192).
- :mod:`.wsp`: the WSP connectionless push PDU (WAP-230).
- :mod:`.wdp`: WDP over SMS (WAP-259): port addressing and concatenation in the UDH.
- :mod:`.push`: the three together, document to SMS user data and back.

Nothing here imports from ``gateway`` or ``plugins``, does I/O, or logs.
"""
