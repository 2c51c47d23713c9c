"""The researcher's preview of an experiment: the whole rater experience, nothing stored.

Staff only (from the admin's "Preview as a rater" link). Before launch the
tasks come from ``experiment_plan_tasks`` (unsaved), after launch from the
stored tasks. The position is in the URL; no view here writes a row. The
pages share their building blocks with the rater pages (:mod:`.views`).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache

from apps.studies import onboarding as ob
from apps.studies.models import Experiment, Rater, Task
from apps.studies.permissions import studies_visible_to
from apps.studies.views import _buttons, _declined, _int, _message, _onboarding, _practice_page

# ---- The researcher's preview: the whole rater experience, nothing stored ------------------
#
# Staff only. Before launch the tasks come from ``experiment_plan_tasks`` (unsaved), after
# launch from the stored tasks. The position is in the URL; no view here writes a row.

_PREVIEW_SEED = "preview"


@dataclass(frozen=True)
class PreviewItem:
    """One step of the preview's task sequence: a task, or a check shown on a task's maps."""

    task: Task
    check: str  # "" (a task), "attention" or "probe"
    left_is_a: bool | None  # as shown (a probe swaps the sides)
    instructed_choice: int | None = None


def _visible_study_only(view):
    """A 404 for an experiment of a study the researcher may not see (owner, collaborators,
    superusers: :mod:`apps.studies.permissions`); the preview shows the hidden conditions."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, code: str, **kwargs: Any) -> HttpResponse:
        study_id = Experiment.objects.filter(code=code).values_list("study_id", flat=True).first()
        if study_id is None or not studies_visible_to(request.user).filter(pk=study_id).exists():
            raise Http404("No such experiment.")
        return view(request, *args, code=code, **kwargs)

    return wrapped


def _preview_experiment(code: str) -> tuple[Experiment, list[Task]]:
    """The experiment (any status) with its tasks: stored, else the launch plan (unsaved)."""
    experiment = Experiment.objects.select_related("study__family").filter(code=code).first()
    if experiment is None:
        raise Http404("No such experiment.")
    stored = list(
        experiment.tasks.select_related("image", "stimulus_a__variant", "stimulus_b__variant")
    )
    if stored:
        return experiment, sorted(stored, key=lambda t: (t.position, t.pk))
    from apps.studies.services import generation  # noqa: PLC0415 (optional until it exists)

    plan_tasks = getattr(generation, "experiment_plan_tasks", None)
    if plan_tasks is None:
        return experiment, []
    plan = plan_tasks(experiment=experiment)
    experiment.onboarding_images = list(plan.onboarding_images)  # in memory only
    return experiment, sorted(plan.tasks, key=lambda t: t.position)


def _preview_items(experiment: Experiment, tasks: list[Task]) -> list[PreviewItem]:
    """A rater's worth of tasks, with a catch task and a check of each kind the design has."""
    chosen = tasks[: experiment.tasks_per_rater]
    catch = next((t for t in tasks if t.is_catch), None)
    if chosen and catch is not None and not any(t.is_catch for t in chosen):
        chosen[-1] = catch
    items = [PreviewItem(t, "", t.left_is_a) for t in chosen]
    if not items:
        return items
    first = items[0].task
    if experiment.attention_checks:
        n_options = len(ob.task_presentation(first, experiment)["options"])
        instructed = random.Random(f"{_PREVIEW_SEED}:{experiment.pk}").randrange(n_options)
        items.insert(
            min(2, len(items)), PreviewItem(first, "attention", first.left_is_a, instructed)
        )
    if experiment.probe_percent:
        swapped = None if first.left_is_a is None else not first.left_is_a
        items.insert(max(len(items) - 1, 1), PreviewItem(first, "probe", swapped))
    return items


def _hidden_facts(item: PreviewItem, experiment: Experiment, options: list[str]) -> list[str]:
    """What only the researcher sees under a previewed task (conditions, catch, check kind)."""
    task = item.task
    class_names = list(experiment.study.family.class_names)
    facts = []
    if experiment.is_pairwise:
        assert task.stimulus_b is not None
        a, b = task.stimulus_a.variant.label, task.stimulus_b.variant.label
        a_side, b_side = ("left", "right") if item.left_is_a else ("right", "left")
        facts.append(f"Condition A = {a} ({a_side}), condition B = {b} ({b_side}).")
    else:
        facts.append(f"Condition: {task.stimulus_a.variant.label}.")
    facts.append(f"Image {task.image.key}, true class: {class_names[task.image.class_index]}.")
    if task.is_catch:
        if experiment.is_pairwise:
            facts.append("Catch trial: B is A's map rotated 180 degrees; A is the right answer.")
        else:
            facts.append("Catch trial: a lightly occluded photo; the true class is the answer.")
    if item.check == "attention":
        assert item.instructed_choice is not None
        facts.append(f"Attention check: the right answer is '{options[item.instructed_choice]}'.")
    elif item.check == "probe":
        facts.append("Consistency probe: repeats task 1 (pairwise: sides swapped).")
    else:
        facts.append("Check kind: none (a regular task).")
    return facts


def _preview_url(name: str, code: str, number: int | None = None) -> str:
    kwargs: dict[str, Any] = {"code": code}
    if number is not None:
        kwargs["number"] = number
    return reverse(name, kwargs=kwargs)


def _preview_after_consent(experiment: Experiment) -> str:
    if ob.practice_trials(experiment, seed=_PREVIEW_SEED):
        return _preview_url("rater-preview-practice", experiment.code, 1)
    return _preview_url("rater-preview-task", experiment.code, 1)


@method_decorator([never_cache, staff_member_required, _visible_study_only], name="dispatch")
class PreviewJoinView(View):
    """The start page as a rater sees it; Start and "I do not agree" lead on, storing nothing."""

    def _render(
        self, request: HttpRequest, experiment: Experiment, tasks: list[Task], **extra: Any
    ) -> HttpResponse:
        example = ob.example_presentation(experiment)
        if example is None and tasks:
            example = ob.task_presentation(tasks[0], experiment)
        return render(
            request,
            "rater/join.html",
            {
                "experiment": experiment,
                "researcher_preview": True,
                "example": example,
                "action": _preview_url("rater-preview", experiment.code),
                "n_preview_tasks": len(_preview_items(experiment, tasks)),
                **_onboarding(experiment, seed=_PREVIEW_SEED),
                **extra,
            },
            status=400 if extra.get("consent_error") else 200,
        )

    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        experiment, tasks = _preview_experiment(code)
        return self._render(request, experiment, tasks)

    def post(self, request: HttpRequest, code: str) -> HttpResponse:
        experiment, tasks = _preview_experiment(code)
        if "decline" in request.POST:
            return _declined(request, experiment, Rater.Source.LINK, preview=True)
        if request.POST.get("consent") != "yes":
            return self._render(request, experiment, tasks, consent_error=True)
        return redirect(_preview_after_consent(experiment))


@method_decorator([never_cache, staff_member_required, _visible_study_only], name="dispatch")
class PreviewPracticeView(View):
    def _trial(self, code: str, number: int) -> tuple[Experiment, list[ob.PracticeTrial]]:
        experiment, _ = _preview_experiment(code)
        trials = ob.practice_trials(experiment, seed=_PREVIEW_SEED)
        if not 1 <= number <= len(trials):
            raise Http404("No such practice trial.")
        return experiment, trials

    def _next(self, experiment: Experiment, number: int, total: int) -> str:
        if number < total:
            return _preview_url("rater-preview-practice", experiment.code, number + 1)
        return _preview_url("rater-preview-task", experiment.code, 1)

    def get(self, request: HttpRequest, code: str, number: int) -> HttpResponse:
        experiment, trials = self._trial(code, number)
        here = _preview_url("rater-preview-practice", code, number)
        return _practice_page(
            request,
            experiment,
            trials[number - 1],
            total=len(trials),
            action=here,
            researcher_preview=True,
        )

    def post(self, request: HttpRequest, code: str, number: int) -> HttpResponse:
        experiment, trials = self._trial(code, number)
        choice = _int(request.POST.get("choice"))
        options = trials[number - 1].presentation["options"]
        if choice is None or not 0 <= choice < len(options):
            return self.get(request, code, number)
        return _practice_page(
            request,
            experiment,
            trials[number - 1],
            total=len(trials),
            action=_preview_url("rater-preview-practice", code, number),
            choice=choice,
            next_url=self._next(experiment, number, len(trials)),
            researcher_preview=True,
        )


@method_decorator([never_cache, staff_member_required, _visible_study_only], name="dispatch")
class PreviewTaskView(View):
    """Task ``number`` of the preview, with the hidden facts under it; an answer just moves on."""

    def get(self, request: HttpRequest, code: str, number: int) -> HttpResponse:
        experiment, tasks = _preview_experiment(code)
        items = _preview_items(experiment, tasks)
        if not items:
            return _message(
                request,
                "This experiment has no tasks to preview yet (its design cannot make any).",
                status=200,
            )
        if not 1 <= number <= len(items):
            raise Http404("No such task in the preview.")
        item = items[number - 1]
        shown = ob.task_presentation(item.task, experiment, left_is_a=item.left_is_a)
        question = (
            "Which explanation is more reasonable?"
            if experiment.is_pairwise
            else "What does this photo show?"
        )
        if item.check == "attention":
            assert item.instructed_choice is not None
            question = ob.attention_question(experiment, shown["options"][item.instructed_choice])
        return render(
            request,
            "rater/preview_task.html",
            {
                "experiment": experiment,
                "code": code,
                "shown": shown,
                "buttons": _buttons(shown),
                "mode": "submit",
                "question": question,
                "number": number,
                "total": len(items),
                "facts": _hidden_facts(item, experiment, shown["options"]),
                "legend": ob.shows_legend(experiment),
                "researcher_preview": True,
            },
        )

    def post(self, request: HttpRequest, code: str, number: int) -> HttpResponse:
        experiment, tasks = _preview_experiment(code)
        total = len(_preview_items(experiment, tasks))
        if number < total:
            return redirect(_preview_url("rater-preview-task", code, number + 1))
        return redirect(_preview_url("rater-preview-done", code))


@method_decorator([never_cache, staff_member_required, _visible_study_only], name="dispatch")
class PreviewDoneView(View):
    def get(self, request: HttpRequest, code: str) -> HttpResponse:
        experiment, tasks = _preview_experiment(code)
        return render(
            request,
            "rater/preview_done.html",
            {
                "experiment": experiment,
                "n_items": len(_preview_items(experiment, tasks)),
                "researcher_preview": True,
                "code": code,
            },
        )
