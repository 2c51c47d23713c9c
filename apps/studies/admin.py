from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.exceptions import ApplicationError
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

    def clean(self):
        cleaned = super().clean()
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


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "status", "family", "launched_at", "download")
    list_filter = ("status",)
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("status", "launched_at", "closed_at", "links_and_progress")
    inlines = [ExperimentInline]
    actions = ["launch", "pause", "resume", "close", "publish"]

    def get_urls(self):
        return [
            path(
                "<int:pk>/responses.csv",
                self.admin_site.admin_view(self.export_view),
                name="studies_study_export",
            )
        ] + super().get_urls()

    def export_view(self, request: HttpRequest, pk: int) -> StreamingHttpResponse:
        study = get_object_or_404(Study.objects.select_related("family"), pk=pk)
        response = StreamingHttpResponse(
            iter_lines(response_csv_lines(study=study)), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
        return response

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
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentAdminForm
    list_display = (
        "__str__", "kind", "scale_points", "stimulus_kind", "answers_per_task", "link", "preview",
    )  # fmt: skip
    list_filter = ("study", "kind")
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
class TaskAdmin(ReadOnlyAdmin):
    list_display = ("pk", "experiment", "image", "left_is_a", "answers", "quota")
    list_filter = ("experiment__study", "experiment")
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
    list_display = ("public_id", "source", "external_id", "created_at")
    list_filter = ("source",)
    search_fields = ("external_id", "public_id")


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
class ParticipationAdmin(ReadOnlyAdmin):
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
    list_filter = ("status", ExcludedFilter, "experiment__study")
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
class AssignmentAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "rater", "task", "claimed_at")
    list_filter = ("experiment__study", "experiment")
    list_select_related = ("rater",)


@admin.register(Response)
class ResponseAdmin(ReadOnlyAdmin):
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
    list_filter = ("task__experiment__study", "task__experiment", "late", "over_quota")
    list_select_related = ("task__experiment__study", "rater")
