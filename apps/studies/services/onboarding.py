"""Writes of the onboarding: a rater's consent and their practice answers.

Practice answers are kept apart from the study's answers: a ``PracticeAnswer``
row per trial, never a ``Response``, never a slot, lease or quota, never in the
CSV export. A declined consent writes nothing at all (the view never calls
these services then).
"""

from __future__ import annotations

from django.db import transaction

from apps.core import clock
from apps.core.exceptions import ApplicationError
from apps.studies.models import Participation, PracticeAnswer
from apps.studies.onboarding import practice_trials


@transaction.atomic
def participation_consent(*, participation: Participation) -> Participation:
    """Record that the rater accepted the consent statement (the first time only)."""
    if participation.consented_at is None:
        participation.consented_at = clock.now()
        participation.save(update_fields=["consented_at", "updated_at"])
    return participation


@transaction.atomic
def practice_answer_submit(
    *, participation: Participation, number: int, choice: int, response_ms: int | None = None
) -> PracticeAnswer:
    """Store the answer to practice trial ``number`` once; a repeat returns the first answer.

    ``practice_done`` becomes the number of trials answered (so a resubmitted
    form never counts twice). Raises ``ApplicationError`` (400) for a trial or
    option that does not exist.
    """
    locked = Participation.objects.select_for_update().get(pk=participation.pk)
    existing = PracticeAnswer.objects.filter(participation=locked, number=number).first()
    if existing is not None:
        return existing
    experiment = participation.experiment
    trials = practice_trials(experiment, seed=participation.pk)
    if not 1 <= number <= len(trials):
        raise ApplicationError("There is no such practice trial.", code="no_practice_trial")
    trial = trials[number - 1]
    options = trial.presentation["options"]
    if not 0 <= choice < len(options):
        raise ApplicationError("That is not one of the options.", code="bad_choice")
    answer = PracticeAnswer.objects.create(
        participation=locked,
        number=number,
        choice=choice,
        answer_raw=options[choice],
        correct=choice in trial.correct_choices,
        response_ms=response_ms,
        submitted_at=clock.now(),
    )
    locked.practice_done = PracticeAnswer.objects.filter(participation=locked).count()
    locked.save(update_fields=["practice_done", "updated_at"])
    participation.practice_done = locked.practice_done
    return answer
