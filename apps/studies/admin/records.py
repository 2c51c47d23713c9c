"""The study's records in the admin: experiments, tasks, raters, participations, answers."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.http import (
    Http404,
)
from django.utils.html import format_html

from apps.studies.admin.common import (
    DESIGN_FIELDS,
    ONBOARDING_FIELDS,
    ExperimentAdminForm,
    VisibleStudiesMixin,
    by_study,
    preview_link,
    rater_link,
    warn_about_repeats,
)
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
