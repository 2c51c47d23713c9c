"""Shared pieces of the studies admin: links, the experiment form, the visibility rule."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import (
    Http404,
)
from django.urls import reverse
from django.utils.html import format_html

from apps.core.exceptions import ApplicationError
from apps.studies.models import (
    Experiment,
    Study,
)
from apps.studies.permissions import studies_visible_to
from apps.studies.services import (
    experiment_check_design,
)


def rater_link(experiment: Experiment) -> str:
    return f"{settings.PUBLIC_BASE_URL}{reverse('rater-join', args=[experiment.code])}"


def preview_link(experiment: Experiment) -> str:
    """The staff-only walk through the rater's pages (drafts too); nothing is stored."""
    if experiment.pk is None:
        return "-"
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">Preview as a rater</a>',
        reverse("rater-preview", args=[experiment.code]),
    )


DESIGN_FIELDS = (
    ("slug", "name", "position"),
    ("kind", "scale_points", "stimulus_kind", "method"),
    ("pairs", "conditions"),
    ("images_per_class", "answers_per_task", "tasks_per_rater"),
    ("one_task_per_image", "lease_seconds"),
    ("min_viewing_ms", "min_screen_width"),
)
ONBOARDING_FIELDS = (
    "consent_text",
    "instructions",
    "practice_trials",
    ("attention_checks", "catch_percent", "probe_percent"),
    "reopen_excluded",
)


# The model's CHECK constraints, said in plain words on the field they are about.
CONSTRAINT_MESSAGES = {
    "experiment_scale_matches_kind": (
        "scale_points",
        "Scale points: a pairwise experiment needs 3, 5 or 7 points; leave it empty for "
        "forced choice.",
    ),
    "experiment_quota_positive": ("answers_per_task", "Answers per task: at least 1."),
    "experiment_lease_min_10s": ("lease_seconds", "Lease seconds: at least 10 seconds."),
}


def plain_errors(form: forms.BaseForm, prefix: str = "") -> list[str]:
    """Every error of ``form`` as one line naming the field by its label."""
    lines = []
    for name, errors in form.errors.items():
        label = "" if name == NON_FIELD_ERRORS else str(form.fields[name].label or name)
        for error in errors:
            text = str(error)
            named = not label or text.lower().startswith(label.lower())
            lines.append(f"{prefix}{text}" if named else f"{prefix}{label}: {text}")
    return lines


class ExperimentAdminForm(forms.ModelForm):
    """Runs the services' design check, so the admin refuses what launch would refuse."""

    class Meta:
        model = Experiment
        fields = (
            "study", "slug", "name", "position", "kind", "scale_points", "stimulus_kind", "method",
            "pairs", "conditions", "images_per_class", "answers_per_task", "tasks_per_rater",
            "one_task_per_image", "lease_seconds", "min_viewing_ms", "min_screen_width",
            "instructions", "consent_text", "practice_trials", "attention_checks",
            "catch_percent", "probe_percent", "reopen_excluded",
        )  # fmt: skip

    # Onboarding and check settings: empty means the model's default (forms posted without
    # them, e.g. by scripts written before they existed, keep working).
    DEFAULTED = ("practice_trials", "attention_checks", "catch_percent", "probe_percent")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.DEFAULTED:
            if name in self.fields:
                self.fields[name].required = False

    def _update_errors(self, errors: ValidationError) -> None:
        """Turn 'Constraint "…" is violated' into a plain message on its field."""
        if hasattr(errors, "error_dict"):
            rest = []
            for error in errors.error_dict.pop(NON_FIELD_ERRORS, []):
                text = " ".join(error.messages)
                hit = next((v for k, v in CONSTRAINT_MESSAGES.items() if k in text), None)
                if hit is None:
                    rest.append(error)
                    continue
                field, message = hit
                if field in self.fields:
                    if not self.has_error(field):
                        errors.error_dict.setdefault(field, []).append(ValidationError(message))
                else:
                    rest.append(ValidationError(message))
            if rest:
                errors.error_dict[NON_FIELD_ERRORS] = rest
            if not errors.error_dict:
                return
        super()._update_errors(errors)

    def clean(self):
        cleaned = super().clean()
        kind, points = cleaned.get("kind"), cleaned.get("scale_points")
        if kind == Experiment.Kind.PAIRWISE and points not in (3, 5, 7):
            self.add_error("scale_points", CONSTRAINT_MESSAGES["experiment_scale_matches_kind"][1])
        if kind == Experiment.Kind.FORCED_CHOICE and points is not None:
            self.add_error("scale_points", "Scale points: leave it empty for forced choice.")
        for name in self.DEFAULTED:
            if name in cleaned and cleaned[name] is None:
                cleaned[name] = Experiment._meta.get_field(name).get_default()
        experiment = self.instance
        for field, value in cleaned.items():
            if hasattr(experiment, field) and field not in ("study", "id"):
                setattr(experiment, field, value)
        study = cleaned.get("study") or getattr(experiment, "study", None)
        if study is not None and study.family_id and not self.errors:
            experiment.study = study
            try:
                experiment_check_design(experiment)
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from None
        return cleaned


REPEATS_WARNING = (
    "Experiment '{}' may show a rater the same source image in several tasks "
    "(one task per image is off). Repeated images and maps can tell raters which "
    "side is which condition; keep it on unless the design needs repeats."
)


def warn_about_repeats(modeladmin: admin.ModelAdmin, request, experiments) -> None:
    for experiment in experiments:
        if not experiment.one_task_per_image:
            modeladmin.message_user(
                request, REPEATS_WARNING.format(experiment.slug), messages.WARNING
            )


class ExperimentInline(admin.StackedInline):
    model = Experiment
    form = ExperimentAdminForm
    extra = 0

    def _locked(self, obj) -> bool:
        return obj is not None and obj.status != Study.Status.DRAFT

    def has_add_permission(self, request, obj=None) -> bool:
        return not self._locked(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._locked(obj)

    fields = (
        *DESIGN_FIELDS,
        *ONBOARDING_FIELDS,
        "preview",
    )

    def get_readonly_fields(self, request, obj=None):
        if self._locked(obj):
            return [f.name for f in Experiment._meta.fields] + ["preview"]
        return ["preview"]

    @admin.display(description="preview")
    def preview(self, obj: Experiment) -> str:
        return preview_link(obj)


class VisibleStudiesMixin:
    """Only the studies the user may see: lists, filters, choices; other objects are 404.

    ``study_path`` is the lookup from the model to its study ("" for Study itself).
    """

    study_path = ""

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        visible = studies_visible_to(request.user).values("pk")
        return queryset.filter(
            **{f"{self.study_path}__in" if self.study_path else "pk__in": visible}
        )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.model._meta.verbose_name} {object_id} among your studies.")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Study:
            kwargs["queryset"] = studies_visible_to(request.user)
        elif db_field.related_model is Experiment:
            kwargs["queryset"] = Experiment.objects.filter(
                study__in=studies_visible_to(request.user).values("pk")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.related_model is Study:
            kwargs["queryset"] = studies_visible_to(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


def by_study(path: str):
    """A list filter on ``path`` offering only studies/experiments the rows refer to."""
    return (path, admin.RelatedOnlyFieldListFilter)
