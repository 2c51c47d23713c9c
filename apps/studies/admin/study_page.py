"""What the study page shows: experiments in CPRs, the map strip, presets, the design summary."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.files.storage import default_storage
from django.db.models import Count
from django.urls import reverse

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import Stimulus
from apps.studies import presets
from apps.studies.admin.common import rater_link
from apps.studies.models import (
    Study,
)


class PresetForm(forms.Form):
    """Add experiments from a preset; the family's variants are listed beside it."""

    preset = forms.ChoiceField(
        label="Design", choices=list(presets.PRESETS.items()), widget=forms.RadioSelect,
        error_messages={"required": "Design: choose one of the designs."},
    )  # fmt: skip
    stimulus_kind = forms.ChoiceField(
        label="Map kind (generic designs)", required=False,
        choices=[("", "the design's own (heat-maps; occlusion-maps for single stimulus)"),
                 *Stimulus.Kind.choices],
    )  # fmt: skip
    baseline = forms.ChoiceField(label="Baseline (baseline vs each)", required=False)
    images_per_class = forms.IntegerField(
        label="Images per class", min_value=1, max_value=10_000,
        help_text=f"The paper: {presets.PAPER_IMAGES_PER_CLASS}. Keep some spare for the "
        "worked example and practice.",
    )  # fmt: skip
    answers_per_task = forms.IntegerField(
        label="Answers per task", min_value=1, max_value=100,
        initial=presets.PAPER_ANSWERS_PER_TASK,
    )  # fmt: skip
    tasks_per_rater = forms.IntegerField(label="Tasks per rater", min_value=1, initial=20)

    def __init__(self, *args, study: Study, **kwargs):
        super().__init__(*args, **kwargs)
        self.study = study
        variants = presets.family_variants(study.family)
        self.fields["baseline"].choices = [("", "the lowest CPR")] + [
            (v.label, f"{v.label} (CPR {v.cpr_target:g})") for v in variants
        ]
        per_class = study.family.images.values("class_index").annotate(n=Count("pk")).order_by("n")
        fewest = per_class[0]["n"] if per_class else 1
        self.fields["images_per_class"].initial = max(
            1, min(presets.PAPER_IMAGES_PER_CLASS, fewest - 1)
        )
        for name, field in self.fields.items():
            label = field.label
            if name != "preset":
                field.error_messages["required"] = f"{label}: this is required."
            field.error_messages["invalid"] = f"{label}: enter a whole number."
            field.error_messages["min_value"] = f"{label}: at least %(limit_value)s."
            field.error_messages["max_value"] = f"{label}: at most %(limit_value)s."
            field.error_messages["invalid_choice"] = (
                f"{label}: %(value)s is not one of the choices."
            )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("preset"):
            try:
                cleaned["plan"] = presets.preset_plan(
                    preset=cleaned["preset"],
                    family=self.study.family,
                    stimulus_kind=cleaned.get("stimulus_kind", ""),
                    baseline=cleaned.get("baseline", ""),
                )
            except ApplicationError as exc:
                self.add_error("preset", exc.message)
        return cleaned


class SummaryForm(forms.Form):
    """The design summary's two knobs (GET parameters of the study page)."""

    half_width = forms.FloatField(
        label="CI half-width", min_value=0.001, max_value=2, initial=0.05, required=False
    )
    reward = forms.DecimalField(
        label="Reward per rater", min_value=0, max_digits=8, decimal_places=2,
        initial=Decimal("1.50"), required=False,
    )  # fmt: skip

    def values(self) -> tuple[float, Decimal]:
        data = self.cleaned_data if self.is_valid() else {}
        return (data.get("half_width") or 0.05, data.get("reward") or Decimal("1.50"))


def _cpr(label: str, cprs: dict[str, float]) -> str:
    return f"CPR {cprs[label]:g}" if label in cprs else label


def experiment_rows(study: Study) -> list[dict]:
    """The study page's experiments: design in words, CPRs, preview and rater links."""
    cprs = {v.label: v.cpr_target for v in study.family.variants.all()}
    rows = []
    for experiment in study.experiments.order_by("position", "pk"):
        if experiment.is_pairwise:
            shown = [f"{_cpr(a, cprs)} vs {_cpr(b, cprs)}" for a, b in experiment.pairs]
            scale = f"{experiment.scale_points} points"
        else:
            shown = [_cpr(label, cprs) for label in experiment.conditions]
            scale = "a class or \u201cI don't know\u201d"
        rows.append(
            {
                "experiment": experiment,
                "kind": experiment.get_kind_display(),
                "stimulus": experiment.get_stimulus_kind_display(),
                "scale": scale,
                "shown": shown,
                "labels": experiment.pairs if experiment.is_pairwise else experiment.conditions,
                "preview_url": reverse("rater-preview", kwargs={"code": experiment.code}),
                "rater_url": rater_link(experiment),
                "change_url": reverse("admin:studies_experiment_change", args=[experiment.pk]),
            }
        )
    return rows


def preview_strip(study: Study, limit: int = 8) -> list[dict]:
    """A few real maps of the family: one image's maps, every variant, both kinds."""
    real = Stimulus.objects.filter(variant__family=study.family, catch="", is_blank=False)
    first = real.order_by("image_id").values_list("image_id", flat=True).first()
    if first is None:
        return []
    stimuli = (
        real.filter(image_id=first)
        .select_related("variant", "image")
        .order_by("kind", "variant__cpr_target")[:limit]
    )
    return [
        {
            "url": default_storage.url(s.file),
            "caption": f"{s.get_kind_display()}, CPR {s.variant.cpr_target:g}",
            "image": s.image.class_name,
        }
        for s in stimuli
    ]


def variant_rows(study: Study) -> list[dict]:
    rows = []
    for v in presets.family_variants(study.family):
        acc = v.test_accuracy
        rows.append(
            {
                "label": v.label,
                "cpr_target": f"{v.cpr_target:.2f}",
                "cpr_measured": f"{v.cpr_measured:.2f}",
                "accuracy": "-" if acc is None else f"{100 * acc if acc <= 1 else acc:.1f} %",
            }
        )
    return rows
