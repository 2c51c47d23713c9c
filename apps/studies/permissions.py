"""Who may see and run a study: its owner (``created_by``), its collaborators, superusers.

Every researcher-facing read (admin lists, the study page, results, the
researcher API) goes through :func:`studies_visible_to`; every action
through :func:`can_manage_study`. Raters never reach these: they are
identified by their rater token, not by a user.
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.studies.models import Study


def studies_visible_to(user) -> QuerySet[Study]:
    """The studies ``user`` may see: all for a superuser, else owned or shared ones."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_superuser:
        return Study.objects.all()
    shared = Study.objects.filter(collaborators=user).values("pk")
    return Study.objects.filter(Q(created_by=user) | Q(pk__in=shared))


def can_manage_study(user, study: Study) -> bool:
    """Whether ``user`` may see and act on ``study`` (launch, pause, download, results)."""
    return studies_visible_to(user).filter(pk=study.pk).exists()
