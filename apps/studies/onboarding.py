"""What a rater reads and sees before the first task: consent, instructions, example, practice.

The defaults depend on the experiment's kind *and* its stimulus kind:

- pairwise heat-maps: a coloured overlay, red = most important, blue = least
  (with a colour legend, also kept on the task page); no right or wrong answer;
- pairwise occlusion-maps: only the most important parts of the photo are
  visible, the rest is black; never any red/blue wording, no legend;
- forced choice: pick the class or "I don't know"; this one *has* right
  answers, so it never says there are none.

``Experiment.instructions``, when set, replaces the default body; the
kind-specific help on the keys and the legend stay. ``consent_text``, when
set, replaces the default consent statement.

Images: ``Experiment.onboarding_images`` (reserved at launch, never shown in a
task) holds the worked example's image first, then one image per practice
trial. Presentations are built here, blinded exactly as
``selectors._task_presentation``: opaque storage URLs, the predicted class and
the options, never a variant label, a CPR or a method. Pairwise practice shows
a real map against the same variant's ``rot180`` map (sides seeded by the
participation), so it has a right answer; forced-choice practice shows a real
occlusion map of a known class.

Time estimate: ``SECONDS_PER_TASK`` per kind (Experiment 1 and 2 of the paper:
about 12 s per comparison, 8 s per classification), replaced by the median
response time of the experiment's stored answers once it has at least
``MEDIAN_AFTER`` of them; plus a minute for reading and the practice trials.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Any

from django.core.files.storage import default_storage
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.pipeline.models import SourceImage, Stimulus
from apps.studies import scales
from apps.studies.models import Experiment, Response, Task
from apps.studies.scales import IDK_LABEL, forced_choice_labels, pairwise_labels

SECONDS_PER_TASK = {Experiment.Kind.PAIRWISE: 12, Experiment.Kind.FORCED_CHOICE: 8}
MEDIAN_AFTER = 20  # stored answers before their median response time replaces the constant
READING_SECONDS = 60

DEFAULT_CONSENT = (
    "This study is run by researchers studying how people judge explanations of image "
    "classifiers (computer models that recognise objects in photos). "
    "We store only your anonymous answers and how long each one took, together with a "
    "random identifier; we do not ask for and do not store your name, e-mail address or "
    "any other personal data. The anonymous answers may be published for research.\n\n"
    "Taking part is voluntary. You can stop at any time by closing the page, without "
    "giving a reason."
)

NO_RIGHT_OR_WRONG = "There are no right or wrong answers; please answer carefully and honestly."
SAVED_AS_YOU_GO = (
    "Your answers are saved as you go; you can close the page and come back in the same browser."
)


def consent_text(experiment: Experiment) -> str:
    return experiment.consent_text.strip() or DEFAULT_CONSENT


def shows_legend(experiment: Experiment) -> bool:
    """Heat-maps are coloured (red = most important, blue = least): they get a legend."""
    return experiment.stimulus_kind == Stimulus.Kind.HEAT


def instructions_kind(experiment: Experiment) -> str:
    if not experiment.is_pairwise:
        return "forced_choice"
    return f"pairwise_{experiment.stimulus_kind}"


def _default_body(experiment: Experiment) -> list[str]:
    kind = instructions_kind(experiment)
    if kind == "pairwise_heat":
        return [
            "In each task you will see a photo in the middle, with the class a computer model "
            "recognised in it, and two explanations of that decision, one on the left and one "
            "on the right.",
            "Each explanation is a coloured overlay on the photo: red marks the parts the "
            "model found most important, blue the least important (see the colour bar).",
            "Decide which explanation is more reasonable: which one points at the parts of the "
            "photo that really show the object.",
            NO_RIGHT_OR_WRONG,
        ]
    if kind == "pairwise_occlusion":
        return [
            "In each task you will see a photo in the middle, with the class a computer model "
            "recognised in it, and two explanations of that decision, one on the left and one "
            "on the right.",
            "In each explanation only the parts of the photo the model found most important "
            "are visible; the rest is black.",
            "Decide which explanation is more reasonable: which visible part better shows the "
            "object.",
            NO_RIGHT_OR_WRONG,
        ]
    body = [
        "In each task you will see a photo of which only some parts are visible: the parts a "
        "computer model found most important. The rest is hidden.",
        "Choose what the photo shows. If you cannot tell, choose "
        f"\u201c{IDK_LABEL}\u201d rather than guessing.",
        "Each photo shows exactly one of the classes; please look carefully before you answer.",
    ]
    if experiment.stimulus_kind == Stimulus.Kind.HEAT:
        body[0] = (
            "In each task you will see a photo with a coloured overlay: red marks the parts a "
            "computer model found most important, blue the least important."
        )
    return body


def instructions_body(experiment: Experiment) -> list[str]:
    """The paragraphs of the instructions: the researcher's text, else the kind's default."""
    own = experiment.instructions.strip()
    if own:
        return [p.strip() for p in own.split("\n\n") if p.strip()]
    return _default_body(experiment)


def key_help(experiment: Experiment) -> SafeString:
    if experiment.is_pairwise:
        return format_html(
            "Use the buttons under the images or the number keys (<kbd>1</kbd>\u2013<kbd>{}</kbd>, "
            "from left to right).",
            experiment.scale_points,
        )
    return mark_safe(
        "Use the buttons or the keys: <kbd>1</kbd>\u2013<kbd>9</kbd> and <kbd>0</kbd> for the "
        "first ten choices, <kbd>X</kbd> for \u201cI don't know\u201d."
    )


def expected_probes(experiment: Experiment) -> int:
    return round(experiment.probe_percent * experiment.tasks_per_rater / 100)


def task_count(experiment: Experiment) -> int:
    """The tasks a rater is shown: the real ones, the attention checks and the expected probes."""
    return experiment.tasks_per_rater + experiment.attention_checks + expected_probes(experiment)


def seconds_per_task(experiment: Experiment) -> float:
    times = list(
        Response.objects.filter(task__experiment=experiment, response_ms__isnull=False)
        .order_by("-submitted_at")
        .values_list("response_ms", flat=True)[:1000]
    )
    if len(times) >= MEDIAN_AFTER:
        return statistics.median(times) / 1000
    return SECONDS_PER_TASK[experiment.kind]


def minutes_estimate(experiment: Experiment) -> int:
    per_task = seconds_per_task(experiment)
    total = (
        READING_SECONDS
        + task_count(experiment) * per_task
        + len(practice_images(experiment)) * per_task * 2
    )
    return max(1, math.ceil(total / 60))


# ---- Images and presentations ---------------------------------------------------------


def _url(name: str) -> str:
    return default_storage.url(name)


def _variant_labels(experiment: Experiment) -> list[str]:
    if experiment.is_pairwise:
        return [label for pair in experiment.pairs for label in pair]
    return list(experiment.conditions)


def _stimulus(
    experiment: Experiment, image_id: int, label: str, catch: str = ""
) -> Stimulus | None:
    return (
        Stimulus.objects.filter(
            image_id=image_id,
            variant__family=experiment.study.family,
            variant__label=label,
            kind=experiment.stimulus_kind,
            method=experiment.method,
            catch=catch,
            is_blank=False,
        )
        .select_related("image")
        .first()
    )


def practice_images(experiment: Experiment) -> list[int]:
    return list(experiment.onboarding_images[1 : 1 + experiment.practice_trials])


def example_presentation(experiment: Experiment) -> dict[str, Any] | None:
    """The worked example of ``onboarding_images[0]``; None when there is none (old experiments).

    Pairwise: the two variants of the experiment's first pair (real maps), left
    and right, with the photo and predicted class. Forced choice: one occlusion
    map of the first condition, with its true class as the example answer.
    """
    if not experiment.onboarding_images:
        return None
    image_id = experiment.onboarding_images[0]
    class_names = list(experiment.study.family.class_names)
    if experiment.is_pairwise:
        if not experiment.pairs:
            return None
        first, second = experiment.pairs[0]
        a, b = _stimulus(experiment, image_id, first), _stimulus(experiment, image_id, second)
        if a is None or b is None:
            return None
        return {
            "kind": "pairwise",
            "left_url": _url(a.file),
            "right_url": _url(b.file),
            "original_url": _url(a.image.file),
            "predicted_class": class_names[a.predicted_class],
            "options": list(pairwise_labels(experiment.scale_points or 5)),
        }
    labels = _variant_labels(experiment)
    stimulus = _stimulus(experiment, image_id, labels[0]) if labels else None
    if stimulus is None:
        return None
    return {
        "kind": "forced_choice",
        "map_url": _url(stimulus.file),
        "options": list(forced_choice_labels(class_names)),
        "answer": class_names[stimulus.image.class_index],
    }


@dataclass(frozen=True)
class PracticeTrial:
    """One practice trial as shown, with its right answer (never stored with the tasks)."""

    number: int  # 1..n
    presentation: dict[str, Any]
    correct_choices: frozenset[int]
    true_class: str
    real_side: str | None  # pairwise: "left" or "right"

    def feedback(self, choice: int) -> tuple[bool, str]:
        correct = choice in self.correct_choices
        if self.real_side is None:
            if correct:
                return True, f"Correct: this photo shows a {self.true_class}."
            return False, f"Not quite: this photo shows a {self.true_class}."
        other = "right" if self.real_side == "left" else "left"
        why = (
            f"The {self.real_side} explanation points at the {self.true_class} in the photo; the "
            f"{other} one is the same explanation turned upside down, so it points at the wrong "
            "parts of the photo."
        )
        if correct:
            return True, f"Well done: the {self.real_side} one is more reasonable. {why}"
        return False, f"The {self.real_side} one is more reasonable here. {why}"


def practice_trials(experiment: Experiment, *, seed: object) -> list[PracticeTrial]:
    """The practice trials that can be shown (an image without the needed maps is left out).

    ``seed`` fixes the sides of pairwise practice (the participation's id; the
    preview uses its own), so a reload shows the same trial.
    """
    class_names = list(experiment.study.family.class_names)
    labels = _variant_labels(experiment)
    trials: list[PracticeTrial] = []
    if not labels:
        return trials
    rng = random.Random(f"practice:{experiment.pk}:{seed}")
    for i, image_id in enumerate(practice_images(experiment)):
        label = labels[i % len(labels)]
        real = _stimulus(experiment, image_id, label)
        if real is None:
            continue
        true_class = class_names[real.image.class_index]
        number = len(trials) + 1
        if experiment.is_pairwise:
            turned = _stimulus(experiment, image_id, label, catch="rot180")
            if turned is None:
                continue
            real_left = rng.random() < 0.5
            left, right = (real, turned) if real_left else (turned, real)
            options = list(pairwise_labels(experiment.scale_points or 5))
            half = (len(options) - 1) // 2
            correct = range(half) if real_left else range(half + 1, len(options))
            trials.append(
                PracticeTrial(
                    number=number,
                    presentation={
                        "kind": "pairwise",
                        "left_url": _url(left.file),
                        "right_url": _url(right.file),
                        "original_url": _url(real.image.file),
                        "predicted_class": class_names[real.predicted_class],
                        "options": options,
                    },
                    correct_choices=frozenset(correct),
                    true_class=true_class,
                    real_side="left" if real_left else "right",
                )
            )
        else:
            trials.append(
                PracticeTrial(
                    number=number,
                    presentation={
                        "kind": "forced_choice",
                        "map_url": _url(real.file),
                        "options": list(forced_choice_labels(class_names)),
                    },
                    correct_choices=frozenset({real.image.class_index}),
                    true_class=true_class,
                    real_side=None,
                )
            )
    return trials


# ---- Tasks as shown in the researcher's preview -----------------------------------------


def task_presentation(
    task: Task, experiment: Experiment, *, left_is_a: bool | None = None
) -> dict[str, Any]:
    """A task (stored or planned, unsaved) as a rater sees it; same fields as the task page.

    ``left_is_a`` overrides the task's side (a probe shows the sides swapped).
    """
    class_names = list(experiment.study.family.class_names)
    a: Stimulus = task.stimulus_a
    if experiment.is_pairwise:
        b = task.stimulus_b
        assert b is not None
        a_left = task.left_is_a if left_is_a is None else left_is_a
        left, right = (a, b) if a_left else (b, a)
        image: SourceImage = task.image
        return {
            "kind": "pairwise",
            "left_url": _url(left.file),
            "right_url": _url(right.file),
            "original_url": _url(image.file),
            "predicted_class": class_names[a.predicted_class],
            "options": list(pairwise_labels(experiment.scale_points or 5)),
        }
    return {
        "kind": "forced_choice",
        "map_url": _url(a.file),
        "options": list(forced_choice_labels(class_names)),
    }


def attention_question(experiment: Experiment, label: str) -> str:
    """The question of an attention check, as the rater loop asks it."""
    return scales.attention_question(pairwise=experiment.is_pairwise, label=label)
