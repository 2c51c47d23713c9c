"""The crowd providers behind one interface (:class:`~.base.CrowdProvider`)."""

from __future__ import annotations

from apps.recruitment.models import Provider, Publication
from apps.recruitment.providers.base import CrowdProvider, ProviderError


def provider_for(publication: Publication) -> CrowdProvider:
    """The provider object serving ``publication`` (its sandbox flag included)."""
    if publication.provider == Provider.LINK:
        from apps.recruitment.providers.link import LinkProvider

        return LinkProvider()
    if publication.provider == Provider.PROLIFIC:
        from apps.recruitment.providers.prolific import ProlificProvider

        return ProlificProvider()
    if publication.provider == Provider.MTURK:
        from apps.recruitment.providers.mturk import MTurkProvider

        return MTurkProvider(sandbox=publication.sandbox)
    raise ProviderError(f"Unknown provider {publication.provider!r}.", code="unknown_provider")
