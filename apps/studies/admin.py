"""The studies in the admin; a study's change page is its home (``admin/studies/study/``).

Every admin here shows only the studies the user may see
(:func:`apps.studies.permissions.studies_visible_to`); an object page of any other
study is a 404.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import Stimulus
from apps.studies import presets
from apps.studies.exports import iter_lines, response_csv_lines
from apps.studies.models import (
    Assignment,
    Experiment,
    Participation,
    Rater,
    Response,
    Study,
    Task,
)
from apps.studies.permissions import studies_visible_to
from apps.studies.selectors import experiment_progress
from apps.studies.services import (
    experiment_check_design,
    study_close,
    study_launch,
    study_pause,
    study_resume,
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


@admin.register(Study)
class StudyAdmin(VisibleStudiesMixin, admin.ModelAdmin):
    list_display = ("name", "slug", "status", "family", "launched_at", "download")
    list_filter = ("status",)
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("status", "created_by", "launched_at", "closed_at", "links_and_progress")
    filter_horizontal = ("collaborators",)
    inlines = [ExperimentInline]
    actions = ["launch", "pause", "resume", "close", "publish"]
    change_form_template = "admin/studies/study/change_form.html"

    def get_urls(self):
        def view(fn, route: str, name: str):
            return path(route, self.admin_site.admin_view(fn), name=f"studies_study_{name}")

        return [
            view(self.export_view, "<int:pk>/responses.csv", "export"),
            view(self.launch_view, "<int:pk>/launch/", "launch"),
            view(self.pause_view, "<int:pk>/pause/", "pause"),
            view(self.resume_view, "<int:pk>/resume/", "resume"),
            view(self.close_view, "<int:pk>/close/", "close"),
            view(self.preset_view, "<int:pk>/preset/", "preset"),
        ] + super().get_urls()

    # --- the study page -------------------------------------------------------------------

    def _study(self, request: HttpRequest, pk: int, *, change: bool = True) -> Study:
        study = get_object_or_404(self.get_queryset(request).select_related("family"), pk=pk)
        allowed = self.has_change_permission if change else self.has_view_permission
        if not allowed(request, study):
            raise PermissionDenied
        return study

    def _home(self, request: HttpRequest) -> HttpResponse:
        return redirect(
            reverse("admin:studies_study_change", args=[request.resolver_match.kwargs["pk"]])
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        study = self.get_object(request, object_id)
        return super().change_view(
            request,
            object_id,
            form_url,
            {**(extra_context or {}), **self.home_context(request, study)},
        )

    def home_context(self, request: HttpRequest, study: Study) -> dict:
        pk = study.pk
        summary_form = SummaryForm(request.GET or None)
        half_width, reward = summary_form.values()
        is_draft = study.status == Study.Status.DRAFT
        context = {
            "study": study,
            "experiment_rows": experiment_rows(study),
            "preview_strip": preview_strip(study),
            "summary_form": summary_form,
            "half_width": half_width,
            "reward": reward,
            "summary": presets.design_summary(study=study, half_width=half_width, reward=reward)
            if is_draft
            else None,
            "urls": {
                "launch": reverse("admin:studies_study_launch", args=[pk]),
                "pause": reverse("admin:studies_study_pause", args=[pk]),
                "resume": reverse("admin:studies_study_resume", args=[pk]),
                "close": reverse("admin:studies_study_close", args=[pk]),
                "preset": reverse("admin:studies_study_preset", args=[pk]),
                "publish": reverse("admin:recruitment_publication_publish", args=[pk]),
                "results": reverse("study-results", args=[study.slug]),
                "csv": reverse("admin:studies_study_export", args=[pk]),
            },
            "can_act": self.has_change_permission(request, study),
        }
        return context

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        lines = plain_errors(context["adminform"].form) if "adminform" in context else []
        for formset in context.get("inline_admin_formsets", []):
            for n, form in enumerate(formset.formset.forms, start=1):
                lines += plain_errors(form, prefix=f"Experiment {n}: ")
            lines += [f"Experiments: {e}" for e in formset.formset.non_form_errors()]
        context["plain_errors"] = lines
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _confirm(self, request, study: Study, *, action: str, question: str, lines: list[str]):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "study": study,
            "title": question,
            "action": action,
            "lines": lines,
        }
        return TemplateResponse(request, "admin/studies/study/confirm.html", context)

    def _run(self, request, study: Study, service, done: str) -> None:
        try:
            service(study=study)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, f"Study '{study.slug}' {done}.", messages.SUCCESS)

    def launch_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: what launching creates (a confirmation page); POST with confirm: launch."""
        study = self._study(request, pk)
        if request.method == "POST" and "confirm" in request.POST:
            self._run(request, study, study_launch, "is live")
            return self._home(request)
        lines = []
        for row in presets.design_summary(study=study):
            e = row.experiment
            lines.append(
                f"{e.name} ({e.slug}): {row.error}"
                if row.error
                else f"{e.name} ({e.slug}): {row.tasks} tasks ({row.catch_tasks} catch), "
                f"{row.answers} answers, about {row.raters} raters"
            )
        lines.append(
            "Launching generates every task and opens the rater links; the design cannot be "
            "changed afterwards."
        )
        return self._confirm(request, study, action="launch", lines=lines,
                             question=f"Launch '{study.name}'?")  # fmt: skip

    def close_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        study = self._study(request, pk)
        if request.method == "POST" and "confirm" in request.POST:
            self._run(request, study, study_close, "is closed")
            return self._home(request)
        lines = [
            "Closing stops accepting answers for good: raters' pages end, nothing more is "
            "stored, and the study cannot be opened again. Answers already given are kept."
        ]
        return self._confirm(request, study, action="close", lines=lines,
                             question=f"Close '{study.name}' for good?")  # fmt: skip

    def pause_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._run(request, self._study(request, pk), study_pause, "is paused")
        return self._home(request)

    def resume_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._run(request, self._study(request, pk), study_resume, "is live again")
        return self._home(request)

    def preset_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Add experiments from a preset (draft studies): pick a design, no JSON."""
        study = self._study(request, pk)
        if study.status != Study.Status.DRAFT:
            self.message_user(
                request, f"Study '{study.slug}' is {study.status}; add experiments to a draft.",
                messages.ERROR,
            )  # fmt: skip
            return self._home(request)
        form = PresetForm(request.POST or None, study=study)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                created, notes = presets.preset_apply(
                    study=study, preset=data["preset"], stimulus_kind=data["stimulus_kind"],
                    baseline=data["baseline"], images_per_class=data["images_per_class"],
                    answers_per_task=data["answers_per_task"],
                    tasks_per_rater=data["tasks_per_rater"],
                )  # fmt: skip
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    for error in errors:
                        form.add_error(
                            None, error if field == NON_FIELD_ERRORS else f"{field}: {error}"
                        )
            else:
                names = ", ".join(e.name for e in created)
                self.message_user(request, f"Added {names}.", messages.SUCCESS)
                for note in notes:
                    self.message_user(request, note, messages.WARNING)
                return self._home(request)
        plans = {}
        for key in presets.PRESETS:
            try:
                plans[key] = presets.preset_plan(preset=key, family=study.family)
            except ApplicationError as exc:
                plans[key] = exc.message
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "study": study,
            "title": f"Add experiments from a preset to '{study.name}'",
            "form": form,
            "plain_errors": plain_errors(form) if form.is_bound else [],
            "variants": variant_rows(study),
            "plans": plans,
        }
        return TemplateResponse(request, "admin/studies/study/preset.html", context)

    def export_view(self, request: HttpRequest, pk: int) -> StreamingHttpResponse:
        study = self._study(request, pk, change=False)
        response = StreamingHttpResponse(
            iter_lines(response_csv_lines(study=study)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
        return response

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        warn_about_repeats(self, request, form.instance.experiments.all())

    @admin.display(description="responses")
    def download(self, obj: Study) -> str:
        return format_html(
            '<a href="{}">CSV</a> · <a href="{}">results</a>',
            reverse("admin:studies_study_export", args=[obj.pk]),
            reverse("study-results", args=[obj.slug]),
        )

    @admin.display(description="rater links and progress")
    def links_and_progress(self, obj: Study) -> str:
        if obj.pk is None:
            return "-"
        rows = [
            (
                p.experiment.name,
                rater_link(p.experiment),
                rater_link(p.experiment),
                p.n_tasks,
                p.n_tasks_complete,
                p.n_answers,
                p.n_slots,
                p.n_leased,
                p.n_late,
                p.n_over_quota,
            )
            for p in experiment_progress(study=obj)
        ]
        return format_html(
            "<table><tr><th>experiment</th><th>rater link</th><th>tasks</th><th>complete</th>"
            "<th>answers</th><th>on screen now</th><th>late (over quota)</th></tr>{}</table>",
            format_html_join(
                "",
                '<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}</td><td>{}</td>'
                "<td>{} / {}</td><td>{}</td><td>{} ({})</td></tr>",
                rows,
            ),
        )

    @admin.action(description="Launch (generate tasks, open to raters)")
    def launch(self, request, queryset):
        for study in queryset:
            try:
                study_launch(study=study)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Study '{study.slug}' is live.")

    def _transition(self, request, queryset, service, done: str) -> None:
        for study in queryset:
            try:
                service(study=study)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Study '{study.slug}' {done}.")

    @admin.action(description="Pause (raters keep their task; nobody gets a new one)")
    def pause(self, request, queryset):
        self._transition(request, queryset, study_pause, "is paused")

    @admin.action(description="Resume (hand out tasks again)")
    def resume(self, request, queryset):
        self._transition(request, queryset, study_resume, "is live again")

    @admin.action(description="Publish on a crowd provider (plain link, Prolific, MTurk)…")
    def publish(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Publish one study at a time.", messages.ERROR)
            return None
        return redirect("admin:recruitment_publication_publish", study_id=queryset.get().pk)

    @admin.action(description="Close (stop accepting answers for good)")
    def close(self, request, queryset):
        self._transition(request, queryset, study_close, "is closed")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(VisibleStudiesMixin, admin.ModelAdmin):
    study_path = "study"
    form = ExperimentAdminForm
    list_display = (
        "__str__", "kind", "scale_points", "stimulus_kind", "answers_per_task", "link", "preview",
    )  # fmt: skip
    list_filter = (by_study("study"), "kind")
    readonly_fields = ("code", "preview")
    fieldsets = (
        (
            None,
            {
                "fields": ("study", *DESIGN_FIELDS, "code", "preview"),
            },
        ),
        (
            "Onboarding and checks",
            {
                "fields": ONBOARDING_FIELDS,
                "description": "What raters read and practise before the first task, and the "
                "quality checks among their tasks. See them with 'Preview as a rater'.",
            },
        ),
    )

    def get_readonly_fields(self, request, obj=None):
        """Locked once its study is launched: tasks, slots and answers depend on every field."""
        if obj is not None and obj.study.status != Study.Status.DRAFT:
            return [f.name for f in Experiment._meta.fields] + ["preview"]
        return super().get_readonly_fields(request, obj)

    @admin.display(description="preview")
    def preview(self, obj: Experiment) -> str:
        return preview_link(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is None or obj.study.status == Study.Status.DRAFT

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        warn_about_repeats(self, request, [obj])

    @admin.display(description="rater link")
    def link(self, obj: Experiment) -> str:
        url = rater_link(obj)
        return format_html('<a href="{}">{}</a>', url, url)


@admin.register(Task)
class TaskAdmin(VisibleStudiesMixin, ReadOnlyAdmin):
    study_path = "experiment__study"
    list_display = ("pk", "experiment", "image", "left_is_a", "answers", "quota")
    list_filter = (by_study("experiment__study"), by_study("experiment"))
    list_select_related = ("experiment__study", "image")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_answers=Count("slots", filter=Q(slots__is_answered=True)))
        )

    @admin.display(description="answers", ordering="n_answers")
    def answers(self, obj: Task) -> int:
        return obj.n_answers


@admin.register(Rater)
class RaterAdmin(ReadOnlyAdmin):
    """Raters of the studies the user may see (a rater belongs to no one study)."""

    list_display = ("public_id", "source", "external_id", "created_at")
    list_filter = ("source",)
    search_fields = ("external_id", "public_id")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        visible = studies_visible_to(request.user).values("pk")
        return queryset.filter(
            pk__in=Participation.objects.filter(experiment__study__in=visible).values("rater_id")
        )

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No rater {object_id} among your studies.")
        return obj


def _figure(value, *, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if percent else f"{value:g}"


class ExcludedFilter(admin.SimpleListFilter):
    title = "excluded by the quality rules"
    parameter_name = "excluded"

    def lookups(self, request, model_admin):
        return (("yes", "Excluded"), ("no", "Not excluded"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(excluded_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(excluded_at__isnull=True)
        return queryset


@admin.register(Participation)
class ParticipationAdmin(VisibleStudiesMixin, ReadOnlyAdmin):
    """Per-rater quality while the study runs (``manage.py quality_pass``, Celery beat)."""

    list_display = (
        "rater",
        "experiment",
        "status",
        "answered",
        "target",
        "checks",
        "attention",
        "catch",
        "consistency",
        "median_time",
        "left_share",
        "exclusion_reasons",
        "completion_code",
    )
    study_path = "experiment__study"
    list_filter = ("status", ExcludedFilter, by_study("experiment__study"))
    list_select_related = ("rater", "experiment__study")

    @admin.display(description="checks")
    def checks(self, obj: Participation) -> str:
        return f"{obj.checks_answered}/{obj.checks_planned}"

    @admin.display(description="attention failed")
    def attention(self, obj: Participation) -> str:
        q = obj.quality or {}
        if not q.get("n_attention"):
            return "-"
        return f"{q.get('attention_failed', 0)} of {q['n_attention']}"

    @admin.display(description="catch accuracy")
    def catch(self, obj: Participation) -> str:
        return _figure((obj.quality or {}).get("catch_accuracy"), percent=True)

    @admin.display(description="consistency")
    def consistency(self, obj: Participation) -> str:
        return _figure((obj.quality or {}).get("consistency"), percent=True)

    @admin.display(description="median ms")
    def median_time(self, obj: Participation) -> str:
        return _figure((obj.quality or {}).get("median_ms"))

    @admin.display(description="left share")
    def left_share(self, obj: Participation) -> str:
        return _figure((obj.quality or {}).get("share_left_more"), percent=True)


@admin.register(Assignment)
class AssignmentAdmin(VisibleStudiesMixin, ReadOnlyAdmin):
    study_path = "experiment__study"
    list_display = ("public_id", "rater", "task", "claimed_at")
    list_filter = (by_study("experiment__study"), by_study("experiment"))
    list_select_related = ("rater",)


@admin.register(Response)
class ResponseAdmin(VisibleStudiesMixin, ReadOnlyAdmin):
    study_path = "task__experiment__study"
    list_display = (
        "pk",
        "task",
        "rater",
        "answer",
        "answer_raw",
        "response_ms",
        "submitted_at",
        "late",
        "over_quota",
    )
    list_filter = (
        by_study("task__experiment__study"),
        by_study("task__experiment"),
        "late",
        "over_quota",
    )
    list_select_related = ("task__experiment__study", "rater")
