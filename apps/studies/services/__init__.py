"""Writes for studies, one module per concern (STYLE §1):

- :mod:`.design`: studies, experiments, the design check;
- :mod:`.generation`: an experiment's tasks and answer slots;
- :mod:`.launch`: launch, pause, resume, close;
- :mod:`.raters`: joining (identity, browser binding, limits);
- :mod:`.serving`: the rater's next step (claims through :mod:`apps.studies.allocation`);
- :mod:`.answers`: storing answers.

The names below are the public surface; import them from here.
"""

from apps.studies.services.answers import SubmitOutcome, response_submit
from apps.studies.services.design import (
    experiment_check_design,
    experiment_create,
    study_create,
)
from apps.studies.services.generation import experiment_generate_tasks
from apps.studies.services.launch import study_close, study_launch, study_pause, study_resume
from apps.studies.services.onboarding import participation_consent, practice_answer_submit
from apps.studies.services.raters import experiment_by_code, rater_exclusion_check, rater_join
from apps.studies.services.serving import (
    NextStep,
    State,
    assignment_heartbeat,
    assignment_next,
    next_step,
)

__all__ = [
    "NextStep",
    "State",
    "SubmitOutcome",
    "assignment_heartbeat",
    "assignment_next",
    "experiment_by_code",
    "experiment_check_design",
    "experiment_create",
    "experiment_generate_tasks",
    "next_step",
    "participation_consent",
    "practice_answer_submit",
    "rater_exclusion_check",
    "rater_join",
    "response_submit",
    "study_close",
    "study_create",
    "study_launch",
    "study_pause",
    "study_resume",
]
