"""The study admin: its change page is the study's home (``admin/studies/study/``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.http import (
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
from apps.studies import presets
from apps.studies.admin.common import (
    ExperimentInline,
    VisibleStudiesMixin,
    plain_errors,
    rater_link,
    warn_about_repeats,
)
from apps.studies.admin.study_page import (
    PresetForm,
    SummaryForm,
    experiment_rows,
    preview_strip,
    variant_rows,
)
from apps.studies.exports import iter_lines, response_csv_lines
from apps.studies.models import (
    Study,
)
from apps.studies.selectors import experiment_progress
from apps.studies.services import (
    study_close,
    study_launch,
    study_pause,
    study_resume,
)


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
