"""Batch campaigns ("群发"): a target list executed, paced, through contact control.

:mod:`gateway.campaigns.targets` reads a target file (normalised, de-duplicated, all or nothing) and keeps the
node's share of it as a snapshot in the state directory; :mod:`.progress` holds the durable
cursor of each campaign in the state database; :mod:`.runner` feeds a running campaign's
targets through ``decide_and_queue`` at its rate; :mod:`.plugin` is the core component
(registered in :data:`gateway.default_plugins.DEFAULT_PLUGINS`).
"""
