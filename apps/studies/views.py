"""Rater HTML pages: join (instructions), the task page, the end page.

The task page is a shell; ``frontend/static/rater/task.js`` drives it through
the JSON API in ``apis.py`` with the signed rater token the page carries.
Which participation a browser is on in an experiment is the ``xr_<code>``
cookie; the browser itself is the ``xai_b`` cookie (see ``identity``). MTurk
shows these pages in a cross-site frame where no cookie is sent: there the
token travels in the URL (``?t=``) from the join to the task and end pages.
These pages may be framed by the crowd sites only (:mod:`.framing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from apps.core.exceptions import ApplicationError
from apps.recruitment.selectors import crowd_end, no_consent_end
from apps.studies import identity
from apps.studies import onboarding as ob
from apps.studies.framing import crowd_frameable
from apps.studies.models import Experiment, Participation, Rater, Study
from apps.studies.selectors import example_presentation, participation_end
from apps.studies.services import (
    experiment_by_code,
    participation_consent,
    practice_answer_submit,
    rater_exclusion_check,
    rater_join,
)


def _message(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return render(request, "rater/message.html", {"message": message}, status=status)


def _error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
    return _message(request, exc.message, status=exc.status_code)


def _set_cookie(response: HttpResponse, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        max_age=settings.RATER_COOKIE_AGE,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def _participation(pk: int, code: str) -> Participation | None:
    return (
        Participation.objects.select_related("experiment__study", "rater")
        .filter(pk=pk, experiment__code=code)
        .first()
    )


def _cookie_participation(request: HttpRequest, code: str) -> Participation | None:
    """The participation this browser is on in experiment ``code``, if it is really its own."""
    token = request.COOKIES.get(identity.participation_cookie(code))
    participation_id = identity.participation_id_from_token(token, code=code)
    browser = identity.browser_id(request.COOKIES)
    if participation_id is None or browser is None:
        return None
    participation = _participation(participation_id, code)
    if participation is None or participation.browser_hash != identity.browser_hash(browser):
        return None
    return participation


@dataclass(frozen=True)
class _Session:
    participation: Participation | None
    url_token: str | None = None  # the page came with ``?t=``: keep it in the next links
    bad_url_token: bool = False


def _rater_session(request: HttpRequest, code: str) -> _Session:
    """The participation of this page: the ``xr_<code>`` cookie's, else the URL's ``?t=`` token.

    MTurk shows the pages in a cross-site frame, where the cookie is never
    sent: there the signed token in the URL alone identifies the
    participation, as the ``X-Rater-Token`` header does for the API.
    """
    participation = _cookie_participation(request, code)
    if participation is not None:
        return _Session(participation)
    token = request.GET.get(identity.TOKEN_PARAM)
    if not token:
        return _Session(None)
    participation_id = identity.participation_id_from_token(token, code=code)
    participation = None if participation_id is None else _participation(participation_id, code)
    if participation is None:
        return _Session(None, bad_url_token=True)
    return _Session(participation, url_token=token)


def _url(name: str, code: str, token: str | None = None) -> str:
    url = reverse(name, kwargs={"code": code})
    return f"{url}?{urlencode({identity.TOKEN_PARAM: token})}" if token else url


def _no_session(request: HttpRequest, code: str, session: _Session) -> HttpResponse:
    if session.bad_url_token:  # in MTurk's frame: the join page would not know the worker
        return _message(
            request,
            "This page's session link is not valid any more. Open the task again from the "
            "page where you started it (on MTurk: reload the HIT).",
            status=403,
        )
    return redirect("rater-join", code=code)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def _onboarding(experiment: Experiment, *, seed: object = 0) -> dict[str, Any]:
    """What the start page says about the experiment (``onboarding``: kind- and stimulus-aware)."""
    return {
        "consent_text": ob.consent_text(experiment),
        "instructions": ob.instructions_body(experiment),
        "key_help": ob.key_help(experiment),
        "legend": ob.shows_legend(experiment),
        "n_tasks": ob.task_count(experiment),
        "minutes": ob.minutes_estimate(experiment),
        "n_practice": len(ob.practice_trials(experiment, seed=seed)),
    }


def _join(
    request: HttpRequest,
    code: str,
    experiment: Experiment,
    who: identity.CrowdIdentity,
    *,
    consent: bool,
) -> HttpResponse:
    browser = identity.browser_id(request.COOKIES) or identity.new_browser_id()
    try:
        participation = rater_join(
            experiment=experiment,
            identity=who,
            browser=browser,
            ip=identity.client_ip(request.META),
        )
    except ApplicationError as exc:
        return _error(request, exc)
    if consent:
        participation_consent(participation=participation)
    token = identity.rater_token(code=code, participation_id=participation.pk)
    # MTurk's frame sends no cookies back: the task page gets the token in its URL.
    in_frame = who.source == Rater.Source.MTURK
    response = redirect(_url("rater-task", code, token if in_frame else None))
    _set_cookie(response, identity.BROWSER_COOKIE, browser)
    _set_cookie(response, identity.participation_cookie(code), token)
    return response


def _declined(
    request: HttpRequest, experiment: Experiment, source: str, *, preview: bool = False
) -> HttpResponse:
    """The end for a rater who declined consent: nothing was stored; back to their provider."""
    end = no_consent_end(experiment=experiment, source=source)
    if end.redirect_url and not preview:
        return redirect(end.redirect_url)
    return render(
        request,
        "rater/declined.html",
        {"source": source, "end": end, "researcher_preview": preview, "code": experiment.code},
    )


@method_decorator([never_cache, crowd_frameable, csrf_exempt], name="dispatch")
class JoinView(View):
    """Consent, instructions, the worked example and the Start button.

    An MTurk preview shows the same page with the example and no Start
    button. Start needs the consent box ticked (a returning rater who already
    consented just continues); "I do not agree" stores nothing and sends the
    rater back to their provider (:func:`_declined`).

    CSRF: the Start form of an MTurk worker is posted from MTurk's cross-site
    frame, where the CSRF cookie is not sent, so the view is exempt and checks
    CSRF itself for every other kind of rater. An MTurk join needs no cookie
    protection: what it starts is named entirely by the link (worker and
    assignment ids), exactly as a GET of that link would be.
    """

    def _experiment(self, code: str) -> Experiment:
        return experiment_by_code(code=code)

    def _page(
        self,
        request: HttpRequest,
        experiment: Experiment,
        who: identity.CrowdIdentity,
        existing: Participation | None,
        *,
        consent_error: bool = False,
    ) -> HttpResponse:
        resuming = existing is not None and (
            who.worker_id is None or who.worker_id == existing.rater.external_id
        )
        example = ob.example_presentation(experiment)
        if example is None and who.preview:  # an experiment launched without onboarding images
            example = example_presentation(experiment=experiment)
        return render(
            request,
            "rater/join.html",
            {
                "experiment": experiment,
                "resuming": resuming,
                "consented": resuming and existing is not None and existing.consented_at,
                "consent_error": consent_error,
                "preview": who.preview,
                "example": example,
                "action": f"?{request.GET.urlencode()}",
                **_onboarding(experiment),
            },
            status=400 if consent_error else 200,
        )

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = self._experiment(code)
            who = identity.crowd_identity(request.GET)
            rater_exclusion_check(
                study=experiment.study, identity=who, browser=identity.browser_id(request.COOKIES)
            )
        except ApplicationError as exc:
            return _error(request, exc)
        if experiment.study.status not in (Study.Status.LIVE, Study.Status.PAUSED):
            return _message(
                request, "This study is not open for answers at the moment.", status=409
            )
        response = self._page(request, experiment, who, _cookie_participation(request, code))
        if identity.browser_id(request.COOKIES) is None:
            _set_cookie(response, identity.BROWSER_COOKIE, identity.new_browser_id())
        return response

    def _consented_before(
        self, request: HttpRequest, code: str, experiment: Experiment, who: identity.CrowdIdentity
    ) -> bool:
        if who.source == Rater.Source.LINK or not who.worker_id:
            existing = _cookie_participation(request, code)
            return existing is not None and existing.consented_at is not None
        return Participation.objects.filter(
            experiment=experiment,
            rater__source=who.source,
            rater__external_id=who.worker_id,
            consented_at__isnull=False,
        ).exists()

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        try:
            experiment = self._experiment(code)
            who = identity.crowd_identity(request.GET)
            # An excluded worker is told so before anything about consent.
            rater_exclusion_check(
                study=experiment.study, identity=who, browser=identity.browser_id(request.COOKIES)
            )
        except ApplicationError as exc:
            return _error(request, exc)
        if "decline" in request.POST:  # writes nothing, so needs no CSRF check
            return _declined(request, experiment, who.source)
        if who.source == Rater.Source.MTURK:
            return self._start(request, code, experiment, who)
        return csrf_protect(self._start)(request, code, experiment, who)

    def _start(
        self, request: HttpRequest, code: str, experiment: Experiment, who: identity.CrowdIdentity
    ) -> HttpResponse:
        consent = request.POST.get("consent") == "yes"
        if not consent and not self._consented_before(request, code, experiment, who):
            existing = _cookie_participation(request, code)
            return self._page(request, experiment, who, existing, consent_error=True)
        return _join(request, code, experiment, who, consent=consent)


def _practice_left(participation: Participation) -> bool:
    """Whether the rater still has practice trials to do (those that can be shown)."""
    experiment = participation.experiment
    if participation.practice_done >= len(ob.practice_images(experiment)):
        return False
    return participation.practice_done < len(ob.practice_trials(experiment, seed=participation.pk))


@method_decorator([never_cache, crowd_frameable], name="dispatch")
class TaskPageView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        session = _rater_session(request, code)
        participation = session.participation
        if participation is None:
            return _no_session(request, code, session)
        experiment = participation.experiment
        if (
            participation.status != Participation.Status.ACTIVE
            or experiment.study.status == Study.Status.CLOSED
        ):
            return redirect(_url("rater-done", code, session.url_token))
        if participation.consented_at is None:
            return redirect("rater-join", code=code)
        if _practice_left(participation):
            return redirect(_url("rater-practice", code, session.url_token))
        return render(
            request,
            "rater/task.html",
            {
                "experiment": experiment,
                "code": code,
                "pairwise": experiment.is_pairwise,
                "legend": ob.shows_legend(experiment),
                "min_viewing_ms": experiment.min_viewing_ms,
                "min_screen_width": experiment.min_screen_width,
                "token": identity.rater_token(code=code, participation_id=participation.pk),
            },
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _buttons(shown: dict[str, Any]) -> list[dict[str, Any]]:
    """The options as form buttons, with the keys the task page uses (1-9, 0; X = "I don't know")."""
    options = shown["options"]
    pairwise = shown["kind"] == "pairwise"
    buttons = []
    for i, label in enumerate(options):
        if not pairwise and i == len(options) - 1:
            key = "X"
        else:
            key = str(i + 1) if i < 9 else ("0" if i == 9 else "")
        buttons.append({"value": i, "label": label, "key": key})
    return buttons


def _practice_page(
    request: HttpRequest,
    experiment: Experiment,
    trial: ob.PracticeTrial,
    *,
    total: int,
    action: str,
    token: str = "",
    choice: int | None = None,
    next_url: str = "",
    researcher_preview: bool = False,
    status: int = 200,
) -> HttpResponse:
    feedback = None
    if choice is not None:
        correct, text = trial.feedback(choice)
        feedback = {"correct": correct, "text": text}
    return render(
        request,
        "rater/practice.html",
        {
            "experiment": experiment,
            "shown": trial.presentation,
            "buttons": _buttons(trial.presentation),
            "mode": "submit" if choice is None else "feedback",
            "number": trial.number,
            "total": total,
            "chosen": choice,
            "feedback": feedback,
            "next_url": next_url,
            "last": trial.number >= total,
            "action": action,
            "token": token,
            "researcher_preview": researcher_preview,
            "code": experiment.code,
            **_onboarding(experiment),
        },
        status=status,
    )


@method_decorator([never_cache, crowd_frameable, csrf_exempt], name="dispatch")
class PracticeView(View):
    """Practice trials with feedback, after consent and before the first task.

    One form POST per trial, then the same trial again with feedback (``?fb=``).
    Answers are ``PracticeAnswer`` rows only (never an answer, a slot or a
    quota). CSRF: the form carries the signed rater token, which a forged
    cross-site form cannot know (MTurk's frame sends no CSRF cookie; the task
    API relies on the same token).
    """

    def _participation(
        self, request: HttpRequest, code: str
    ) -> tuple[_Session, Participation | None, HttpResponse | None]:
        session = _rater_session(request, code)
        participation = session.participation
        if participation is None:
            return session, None, _no_session(request, code, session)
        if participation.consented_at is None:
            return session, None, redirect("rater-join", code=code)
        return session, participation, None

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        session, participation, early = self._participation(request, code)
        if participation is None:
            assert early is not None
            return early
        experiment = participation.experiment
        trials = ob.practice_trials(experiment, seed=participation.pk)
        here = _url("rater-practice", code, session.url_token)
        token = identity.rater_token(code=code, participation_id=participation.pk)
        shown = _int(request.GET.get("fb"))
        if shown is not None and 1 <= shown <= len(trials):
            answer = participation.practice_answers.filter(number=shown).first()
            if answer is not None:
                last = shown >= len(trials)
                return _practice_page(
                    request,
                    experiment,
                    trials[shown - 1],
                    total=len(trials),
                    action=here,
                    choice=answer.choice,
                    next_url=_url("rater-task", code, session.url_token) if last else here,
                )
        number = participation.practice_done + 1
        if number > len(trials):
            return redirect(_url("rater-task", code, session.url_token))
        return _practice_page(
            request, experiment, trials[number - 1], total=len(trials), action=here, token=token
        )

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        session, participation, early = self._participation(request, code)
        if participation is None:
            assert early is not None
            return early
        token = request.POST.get("token")
        if identity.participation_id_from_token(token, code=code) != participation.pk:
            return _message(request, "This form has expired; please reload the page.", status=403)
        number, choice = _int(request.POST.get("number")), _int(request.POST.get("choice"))
        if number is None or choice is None:
            return _message(request, "Please choose one of the options.", status=400)
        try:
            practice_answer_submit(participation=participation, number=number, choice=choice)
        except ApplicationError as exc:
            return _error(request, exc)
        here = _url("rater-practice", code, session.url_token)
        return redirect(f"{here}{'&' if '?' in here else '?'}fb={number}")


@method_decorator([never_cache, crowd_frameable], name="dispatch")
class DoneView(View):
    """The end: what was stored, and the provider's way out (see ``recruitment.selectors``)."""

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        session = _rater_session(request, code)
        participation = session.participation
        if participation is None:
            return _no_session(request, code, session)
        end = participation_end(participation=participation)
        return render(
            request,
            "rater/done.html",
            {
                "end": end,
                "code": code,
                "finish": crowd_end(participation=participation, end=end),
                "task_url": _url("rater-task", code, session.url_token),
            },
        )
