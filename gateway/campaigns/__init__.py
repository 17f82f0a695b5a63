"""Campaigns: definitions (TOML files, later the dispatch webservice), lifecycle with an audit
trail, and the store that compiles running realtime campaigns into the rule index.

``gateway.campaigns`` is a :class:`CampaignStore`; the core component that opens it and adds
the ``campaigns`` admin commands is :mod:`gateway.campaigns.plugin`.
"""

from gateway.campaigns.loader import load_campaign_dir, load_campaign_file, parse_campaign
from gateway.campaigns.model import CampaignDef, LifecycleError, Schedule, next_state
from gateway.campaigns.store import CampaignStore

__all__ = [
    "CampaignDef",
    "CampaignStore",
    "LifecycleError",
    "Schedule",
    "load_campaign_dir",
    "load_campaign_file",
    "next_state",
    "parse_campaign",
]
