"""The trigger-rule language: parsing, compiled index, per-subscriber state, templates.

The language is documented for campaign authors in ``docs/rules.md``.

Plugin condition types (hook ``gateway_condition_types``): return ``{type_name: factory}``.
``factory(table)`` gets a :class:`gateway.config_reader.TableReader` over the condition's
table (read your keys with it; unknown keys are reported for you; raise ``ValueError`` with a
message for anything else you refuse) and returns an object with
``test(event: SignalEvent, subscriber: Subscriber | None) -> bool``, called on the hot path
for events that passed the rule's kind and location. Example::

    @hookimpl
    def gateway_condition_types():
        def long_call(table):
            minimum = table.duration("at_least")
            return LongCall(minimum)   # .test(event, subscriber): event.duration >= minimum
        return {"long_call": long_call}
"""

from gateway.rules.areas import Area, load_areas, parse_areas, parse_cell
from gateway.rules.compiler import CompiledRule, RuleIndex, naive_candidates
from gateway.rules.conditions import LocalClock, MatchContext, MatcherState
from gateway.rules.parsers import CONDITION_TYPES
from gateway.rules.template import Template, TemplateError
from gateway.rules.trigger import Trigger, parse_trigger

__all__ = [
    "CONDITION_TYPES",
    "Area",
    "CompiledRule",
    "LocalClock",
    "MatchContext",
    "MatcherState",
    "RuleIndex",
    "Template",
    "TemplateError",
    "Trigger",
    "load_areas",
    "naive_candidates",
    "parse_areas",
    "parse_cell",
    "parse_trigger",
]
