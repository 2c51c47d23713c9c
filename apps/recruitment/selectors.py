"""Reads for recruitment: an experiment's publication, and how a crowd rater's end page ends.

The end page (``apps.studies.views.DoneView``) is the same for everybody up to
the last step, which depends on where the rater came from:

- **MTurk**: the worker's browser must POST the assignment to
  ``<host>/mturk/externalSubmit`` (a field named exactly ``assignmentId``) or
  the HIT is never submitted. ``<host>`` is the ``turkSubmitTo`` recorded at
  join, which :func:`apps.studies.identity.crowd_identity` kept only if it is
  one of ``settings.MTURK_SUBMIT_HOSTS``; else the host of the experiment's
  MTurk publication (sandbox or production). Nothing from the end page's own
  query string is ever used: a forged host would make the page post the
  worker's assignment anywhere.
- **Prolific** matches one study-level code, not ours: a rater who earned
  the completion code is sent to Prolific's completion URL with the
  publication's ``completion_code``; one who found no task left before
  answering anything, with its ``no_tasks_code``. The participation's own
  code is not shown (it would only confuse).
- **Plain link**: the participation's own code and, if the researcher set
  one, a "Continue" button to the link publication's ``completion_redirect_url``.

A rater who *declines consent* has no participation and earned nothing
(:func:`no_consent_end`): Prolific gets the publication's ``no_consent_code``
(code type NO_CONSENT), an MTurk worker is asked to return the HIT (nothing
to submit), a plain-link rater gets a thank-you page (the completion
redirect is for completers only).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Case, IntegerField, Value, When

from apps.recruitment.models import Provider, Publication
from apps.studies.identity import TURK_SUBMIT_TO, mturk_submit_host
from apps.studies.models import Experiment, Participation, Rater
from apps.studies.selectors import ParticipationEnd

PROLIFIC_COMPLETE_URL = "https://app.prolific.com/submissions/complete"


def publication_for(*, experiment: Experiment, provider: str) -> Publication | None:
    """The experiment's publication on ``provider``, or None.

    An experiment can have two on MTurk (sandbox and production): the
    published one wins, then production over sandbox, then the oldest.
    """
    return (
        Publication.objects.filter(experiment=experiment, provider=provider)
        .order_by(
            Case(
                When(status=Publication.Status.PUBLISHED, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            "sandbox",
            "pk",
        )
        .first()
    )


@dataclass(frozen=True)
class MTurkSubmit:
    """The form that submits the worker's assignment to MTurk."""

    action: str  # <host>/mturk/externalSubmit
    assignment_id: str
    completion_code: str


@dataclass(frozen=True)
class CrowdEnd:
    """How the end page finishes for this rater, beyond the shared "thank you"."""

    show_code: bool = True  # the participation's own completion code (when earned)
    mturk_submit: MTurkSubmit | None = None
    redirect_url: str | None = None  # Prolific: where the page sends the rater by itself
    continue_url: str | None = None  # plain link: a "Continue" button, no automatic move


def mturk_submit_action(*, participation: Participation) -> str:
    """Where this worker's browser posts the assignment: never a host outside the allowed ones."""
    host = mturk_submit_host(participation.external_session.get(TURK_SUBMIT_TO))
    if host is None:
        publication = publication_for(experiment=participation.experiment, provider=Provider.MTURK)
        kind = "sandbox" if publication is not None and publication.sandbox else "production"
        host = settings.MTURK_SUBMIT_HOSTS[kind].rstrip("/")
    return f"{host}/mturk/externalSubmit"


def prolific_complete_url(code: str) -> str:
    return f"{PROLIFIC_COMPLETE_URL}?{urlencode({'cc': code})}"


def crowd_end(*, participation: Participation, end: ParticipationEnd) -> CrowdEnd:
    """The provider-specific end of ``participation`` (``end`` is its ``participation_end``)."""
    source = participation.rater.source
    earned = end.completion_code is not None
    if source == Rater.Source.MTURK:
        assignment_id = participation.external_session.get("assignmentId")
        if not earned or not assignment_id:
            return CrowdEnd()
        return CrowdEnd(
            mturk_submit=MTurkSubmit(
                action=mturk_submit_action(participation=participation),
                assignment_id=assignment_id,
                completion_code=end.completion_code or "",
            )
        )
    if source == Rater.Source.PROLIFIC:
        publication = publication_for(
            experiment=participation.experiment, provider=Provider.PROLIFIC
        )
        if publication is None:  # recruited by hand: the participation's code is all there is
            return CrowdEnd()
        if earned:
            return CrowdEnd(
                show_code=False, redirect_url=prolific_complete_url(publication.completion_code)
            )
        if end.reason == "exhausted" and end.answered == 0:
            return CrowdEnd(
                show_code=False, redirect_url=prolific_complete_url(publication.no_tasks_code)
            )
        return CrowdEnd(show_code=False)
    if earned:
        publication = publication_for(experiment=participation.experiment, provider=Provider.LINK)
        if publication is not None and publication.completion_redirect_url:
            return CrowdEnd(continue_url=publication.completion_redirect_url)
    return CrowdEnd()


def no_consent_end(*, experiment: Experiment, source: str) -> CrowdEnd:
    """Where a rater who declined consent goes: never a completion code, never a submit."""
    if source == Rater.Source.PROLIFIC:
        publication = publication_for(experiment=experiment, provider=Provider.PROLIFIC)
        if publication is not None:
            return CrowdEnd(
                show_code=False, redirect_url=prolific_complete_url(publication.no_consent_code)
            )
    return CrowdEnd(show_code=False)
