"""Raters joining an experiment: who they are, which participation, which browser.

A crowd worker's participation is bound to the browser that started it: the
same worker id from another browser is refused, unless that browser brings
the provider's id of the same visit (Prolific ``SESSION_ID``, MTurk
``assignmentId``) recorded at the start, which moves the participation to
it. A plain-link rater *is* their browser, so a browser has one
participation per experiment; optional hourly limits per browser and per IP
stop a script from hoarding tasks through plain links.

A study can exclude the raters of earlier studies (``Study.exclude_raters_of``):
a crowd worker is recognised by provider and worker id, a plain-link rater by
their browser (their rater's ``external_id`` is the browser hash). Recruiting
platforms have their own screens (MTurk qualifications, Prolific's blocklist),
but those lag or can be forgotten, so the join checks too.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from apps.core import clock
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.logs import hash_rater_id
from apps.studies.identity import SESSION_KEY, CrowdIdentity, browser_hash, ip_hash
from apps.studies.models import Experiment, Participation, Rater, Study
from apps.studies.services.checks import checks_plan

logger = logging.getLogger(__name__)


def experiment_by_code(*, code: str) -> Experiment:
    try:
        return Experiment.objects.select_related("study__family").get(code=code)
    except Experiment.DoesNotExist:
        raise NotFoundError("This study link is not valid.", code="unknown_link") from None


def _bind_check(participation: Participation, *, identity: CrowdIdentity, bhash: str) -> None:
    """Refuse a crowd worker's participation to a browser other than the one that started it."""
    if participation.browser_hash in ("", bhash):
        if not participation.browser_hash:
            participation.browser_hash = bhash
            participation.save(update_fields=["browser_hash", "updated_at"])
        return
    recorded = participation.external_session.get(SESSION_KEY.get(identity.source, ""), "")
    if identity.session_id and identity.session_id == recorded:
        participation.browser_hash = bhash
        participation.save(update_fields=["browser_hash", "updated_at"])
        return
    raise ConflictError(
        "This worker id is already taking part in this study from another browser. "
        "Please continue in the browser where you started.",
        code="other_browser",
    )


_EXCLUDED_RETURN: dict[str, str] = {
    Rater.Source.MTURK: "Please return the HIT.",
    Rater.Source.PROLIFIC: "Please return your submission on Prolific.",
    Rater.Source.LINK: "You can close this page.",
}


def rater_exclusion_check(*, study: Study, identity: CrowdIdentity, browser: str | None) -> None:
    """Refuse a rater who took part in a study that ``study`` excludes the raters of.

    Crowd workers match on provider and worker id; plain-link raters on the
    browser (no browser yet means nobody to recognise). A preview is never
    refused: it has no worker and creates nothing. The refusal is a polite
    403 asking the worker to return the HIT or submission: a return costs a
    worker nothing, unlike a rejection of work the study cannot use.
    """
    if identity.preview:
        return
    if identity.source == Rater.Source.LINK:
        if not browser:
            return
        external_id = browser_hash(browser)
    elif identity.worker_id:
        external_id = identity.worker_id
    else:
        return
    earlier = [pk for pk in study.exclude_raters_of.values_list("pk", flat=True) if pk != study.pk]
    if not earlier:
        return
    took_part = Participation.objects.filter(
        rater__source=identity.source,
        rater__external_id=external_id,
        experiment__study_id__in=earlier,
    ).exists()
    if took_part:
        raise ApplicationError(
            "Thank you for your interest. This study is for people who did not take part in "
            "an earlier, related study, and our records show that you did, so we cannot "
            f"include you this time. {_EXCLUDED_RETURN.get(identity.source, '')}".strip(),
            code="excluded_earlier_study",
            status_code=403,
        )


def _check_link_limits(*, bhash: str, iphash: str) -> None:
    since = clock.now() - timedelta(hours=1)
    recent = Participation.objects.filter(rater__source=Rater.Source.LINK, created_at__gte=since)
    per_browser = settings.RATER_LINK_JOINS_PER_BROWSER_PER_HOUR
    if per_browser and recent.filter(browser_hash=bhash).count() >= per_browser:
        raise ApplicationError(
            "You have started the most sessions allowed from this browser in one hour; "
            "please try again later.",
            code="too_many_joins",
            status_code=429,
        )
    per_ip = settings.RATER_LINK_JOINS_PER_IP_PER_HOUR
    if per_ip and iphash and recent.filter(ip_hash=iphash).count() >= per_ip:
        raise ApplicationError(
            "Too many sessions were started from your network in the last hour; "
            "please try again later.",
            code="too_many_joins",
            status_code=429,
        )


@transaction.atomic
def rater_join(
    *, experiment: Experiment, identity: CrowdIdentity, browser: str, ip: str = ""
) -> Participation:
    """The participation this browser continues or starts in ``experiment``.

    Raises ``ConflictError`` when the study is closed (or paused, for a new
    rater) and when a crowd worker's participation belongs to another browser;
    ``ApplicationError`` (403, ``excluded_earlier_study``) for a rater of a
    study this one excludes (:func:`rater_exclusion_check`).
    """
    study = Study.objects.get(pk=experiment.study_id)  # its status now, not when loaded
    if identity.preview:
        raise ApplicationError("This is a preview: accept the HIT to start.", code="preview")
    if study.status not in (Study.Status.LIVE, Study.Status.PAUSED):
        raise ConflictError("This study is not open for answers at the moment.", code="not_live")
    rater_exclusion_check(study=study, identity=identity, browser=browser)
    bhash = browser_hash(browser)
    is_link = identity.source == Rater.Source.LINK
    rater, _ = Rater.objects.get_or_create(
        source=identity.source, external_id=bhash if is_link else identity.worker_id
    )
    existing = Participation.objects.filter(rater=rater, experiment=experiment).first()
    if existing is not None:
        _bind_check(existing, identity=identity, bhash=bhash)
        return existing
    if study.status != Study.Status.LIVE:
        raise ConflictError("This study is paused; please come back a little later.", code="paused")
    iphash = ip_hash(ip) if is_link and ip else ""
    if is_link:
        _check_link_limits(bhash=bhash, iphash=iphash)
    participation, created = Participation.objects.get_or_create(
        rater=rater,
        experiment=experiment,
        defaults={
            "target": experiment.tasks_per_rater,
            "external_session": identity.session,
            "browser_hash": bhash,
            "ip_hash": iphash,
        },
    )
    if not created:  # a concurrent join of the same rater won the race
        _bind_check(participation, identity=identity, bhash=bhash)
    else:
        checks_plan(participation=participation, experiment=experiment)
        # Never the worker id in clear (a keyed hash still follows one rater through the logs).
        logger.info(
            "rater joined: experiment %s, participation %s, %s rater %s",
            experiment.pk,
            participation.pk,
            rater.source,
            hash_rater_id(rater.external_id),
        )
    return participation
