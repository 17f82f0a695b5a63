"""The do-not-disturb categories have one definition that every part reads."""

from __future__ import annotations

from gateway.contact import explain
from gateway.contact.config import CATEGORIES, NEVER_EXEMPT, SCOPED_CATEGORIES


def test_every_category_is_explained_and_the_subsets_are_categories():
    """`gatewayctl contacts why` has words for each category; scoped and never-exempt are subsets."""
    assert set(explain._LIST_WORDS) == set(CATEGORIES)
    assert set(SCOPED_CATEGORIES) <= set(CATEGORIES) and set(NEVER_EXEMPT) <= set(CATEGORIES)
