"""The core's own components, registered as plugins before any entry-point plugin.

Like pytest's ``default_plugins``: the contact-control core, the outbox, campaigns, profiles
and the pipeline use the same hooks as any plugin (config sections, stores, admin commands),
but they are part of the core and cannot be disabled. Listed by import path (a module, or
``module:Class`` for a plugin object made fresh for each plugin manager, so that a component's
state lives on its plugin object and not in a module-level registry); registered under the
module path, in this order.
"""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "gateway.numbers",  # first: the numbering plan is active before any store opens
    "gateway.contact.plugin",
    "gateway.outbox.plugin",
    "gateway.presence",  # before the pipeline, which feeds it
    # Before campaigns: the campaigns store takes the approval gate before it stores a file.
    "gateway.staff.plugin:StaffPlugin",
    "gateway.approval.plugin:ApprovalPlugin",
    "gateway.campaigns.plugin:CampaignsPlugin",
    "gateway.enrich.plugin:EnrichmentPlugin",  # before the pipeline, which reads its tables
    # After campaigns: its store reads the campaigns store and profiles opened above.
    "gateway.pipeline_plugin",
    # After contact control, the outbox and campaigns: it feeds their public APIs.
    "gateway.batch.plugin:BatchPlugin",
    "gateway.twoway.plugin:TwowayPlugin",  # offers of batch and realtime contacts, replies
)
