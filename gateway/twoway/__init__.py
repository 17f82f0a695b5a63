"""Two-way SMS: reply addresses, MO routing, keywords, opt-out and acceptance.

Each campaign with a ``[reply]`` table gets a reply address: the ``[twoway] service_code``
extended by a sub-code allocated by the core ("子代码扩展"), released once the campaign ended
and its offers' validity passed. Its offers (allowed contacts) are remembered with their
validity. A subscriber's MO message is routed by its destination's sub-code, else to the
latest open offer to that subscriber, and its text read against the campaign's keywords:
accept (recorded in the ledger, ``gateway_offer_accepted`` fired), decline (recorded), or
opt-out (the subscriber added to the configured opt-out list at once, confirmed by SMS).
Anything else is logged (the MSISDN masked) and counted.

:mod:`.config` is the ``[twoway]`` section, :mod:`.store` the tables in the state database,
:mod:`.router` the component, :mod:`.plugin` its hooks (a default plugin).
"""
