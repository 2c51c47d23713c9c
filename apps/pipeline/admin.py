"""The pipeline in the admin: families with a run action, live jobs (progress,
cancel, retry), variants, images and stimuli, and a per-family stimulus grid.

Numbers go through ``apps.pipeline.formatting``; long texts are truncated with
the full text in a tooltip, so every list fits a 1280 px window
(``frontend/static/admin_xai/pipeline.css``).
"""

from __future__ import annotations

import random

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.core.exceptions import ApplicationError
from apps.pipeline.formatting import fmt_cpr, fmt_percent, fmt_seconds
from apps.pipeline.models import ModelFamily, ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.selectors import family_latest_job, family_stimulus_grid, job_progress
from apps.pipeline.services import job_cancel, job_create, job_retry

STATIC_MEDIA = {"css": {"all": ["admin_xai/pipeline.css"]}, "js": ["admin_xai/job_progress.js"]}


def _truncated(text: object, width: str = "12em") -> str:
    """``text`` cut to ``width`` with an ellipsis; the whole text in the tooltip."""
    text = "" if text is None else str(text)
    return format_html(
        '<span class="xai-trunc" style="max-width:{}" title="{}">{}</span>', width, text, text
    )


def _thumb(name: str, size: int = 64, alt: str = "") -> str:
    if not name:
        return "\u2014"
    return format_html(
        '<img class="xai-thumb" src="{}" width="{}" height="{}" alt="{}" loading="lazy">',
        default_storage.url(name), size, size, alt,
    )  # fmt: skip


def _job_summary(job: PipelineJob | None) -> str:
    if job is None:
        return "never run"
    return f"{job.get_status_display()} {fmt_percent(job.progress)} {job.step}".strip()


class ModelVariantInline(admin.TabularInline):
    model = ModelVariant
    extra = 0
    can_delete = False
    fields = ("label", "cpr_target_display", "cpr_measured_display", "sparsity_display",
              "test_accuracy_display", "checkpoint_sha256_short")  # fmt: skip
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="CPR target")
    def cpr_target_display(self, obj: ModelVariant) -> str:
        return fmt_cpr(obj.cpr_target)

    @admin.display(description="CPR measured")
    def cpr_measured_display(self, obj: ModelVariant) -> str:
        return fmt_cpr(obj.cpr_measured)

    @admin.display(description="conv sparsity")
    def sparsity_display(self, obj: ModelVariant) -> str:
        return fmt_percent(obj.conv_sparsity)

    @admin.display(description="test accuracy")
    def test_accuracy_display(self, obj: ModelVariant) -> str:
        return fmt_percent(obj.test_accuracy)

    @admin.display(description="checkpoint sha256")
    def checkpoint_sha256_short(self, obj: ModelVariant) -> str:
        return _truncated(obj.checkpoint_sha256, "8em")


@admin.register(ModelFamily)
class ModelFamilyAdmin(admin.ModelAdmin):
    list_display = ("name_short", "slug_short", "dataset_short", "architecture_short",
                    "prune_method_short", "schedule_short", "latest_job")  # fmt: skip
    list_display_links = ("name_short",)
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("class_names", "target_layer")
    inlines = [ModelVariantInline]
    actions = ["run_pipeline"]
    change_form_template = "admin/pipeline/modelfamily/change_form.html"

    class Media:
        css = STATIC_MEDIA["css"]
        js = STATIC_MEDIA["js"]

    @admin.display(description="name", ordering="name")
    def name_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.name, "10em")

    @admin.display(description="slug", ordering="slug")
    def slug_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.slug, "10em")

    @admin.display(description="dataset", ordering="dataset")
    def dataset_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.get_dataset_display(), "8em")

    @admin.display(description="pruning", ordering="prune_method")
    def prune_method_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.get_prune_method_display(), "8em")

    @admin.display(description="schedule", ordering="schedule")
    def schedule_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.get_schedule_display(), "8em")

    @admin.display(description="architecture", ordering="architecture")
    def architecture_short(self, obj: ModelFamily) -> str:
        return _truncated(obj.architecture, "8em")

    @admin.display(description="latest job")
    def latest_job(self, obj: ModelFamily) -> str:
        job = family_latest_job(family=obj)
        if job is None:
            return "never run"
        url = reverse("admin:pipeline_pipelinejob_change", args=[job.pk])
        text = _job_summary(job)
        return format_html('<a class="xai-trunc" style="max-width:10em" href="{}" title="{}">{}</a>',
                           url, text, text)  # fmt: skip

    @admin.action(description="Run the pipeline (train, prune, explain)")
    def run_pipeline(self, request, queryset):
        started: list[PipelineJob] = []
        for family in queryset:
            try:
                job = job_create(family=family)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                started.append(job)
                self.message_user(request, f"Started job {job.pk} for {family.slug}.")
        if len(started) == 1:  # follow it live
            return HttpResponseRedirect(
                reverse("admin:pipeline_pipelinejob_change", args=[started[0].pk])
            )
        return None

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress/", view(self.progress_view), name="pipeline_family_progress"),
            path("<int:pk>/stimuli/", view(self.grid_view), name="pipeline_family_grid"),
            *super().get_urls(),
        ]

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """The family's latest job, as the live panel reads it (``{"id": null}`` if none)."""
        family = get_object_or_404(ModelFamily, pk=pk)
        if not self.has_view_permission(request, family):
            raise PermissionDenied
        job = family_latest_job(family=family)
        return JsonResponse(job_progress(job=job) if job else {"id": None})

    def grid_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """Images x variants for one kind and method, blinded (shuffled, no labels:
        what a rater sees) or unblinded (columns by CPR, labelled)."""
        family = get_object_or_404(ModelFamily, pk=pk)
        if not self.has_view_permission(request, family):
            raise PermissionDenied
        kind = request.GET.get("kind") or Stimulus.Kind.HEAT
        method = request.GET.get("method") or "gradcam"
        blinded = request.GET.get("view", "blinded") != "unblinded"
        include_catch = request.GET.get("catch") == "1"
        seed = request.GET.get("seed") or "0"
        grid = family_stimulus_grid(
            family=family, kind=kind, method=method, include_catch=include_catch
        )
        rows = []
        for row in grid.rows:
            if blinded:  # as a rater sees them: no blank maps, shuffled, no labels
                cells = [c for c in row.cells if c is not None and not c.is_blank]
                random.Random(f"{seed}:{row.image.pk}:{row.catch}").shuffle(cells)
            else:
                cells = row.cells
            rows.append({"image": row.image, "catch": row.catch,
                         "photo_url": default_storage.url(row.image.file),
                         "cells": [{"stimulus": c, "url": default_storage.url(c.file)}
                                   if c else None for c in cells]})  # fmt: skip
        columns = [
            {"variant": v, "cpr": fmt_cpr(v.cpr_measured), "accuracy": fmt_percent(v.test_accuracy)}
            for v in grid.variants
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": family,
            "title": f"Stimulus grid: {family.name}",
            "family": family,
            "grid": grid,
            "rows": rows,
            "columns": columns,
            "n_maps": max((len(r["cells"]) for r in rows), default=0),
            "kind": kind,
            "method": method,
            "blinded": blinded,
            "include_catch": include_catch,
            "seed": seed,
            "next_seed": random.randrange(1, 10**6),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/pipeline/stimulus_grid.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        family = self.get_object(request, object_id)
        if family is not None:
            extra_context["job_panel"] = {
                "progress_url": reverse("admin:pipeline_family_progress", args=[family.pk]),
                "job": family_latest_job(family=family),
                "next": request.get_full_path(),
            }
            extra_context["grid_url"] = reverse("admin:pipeline_family_grid", args=[family.pk])
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(PipelineJob)
class PipelineJobAdmin(admin.ModelAdmin):
    list_display = ("pk", "family", "status", "progress_percent", "step_short",
                    "message_short", "duration", "created_at")  # fmt: skip
    list_filter = ("status", "family")
    readonly_fields = ("family", "status", "progress_percent", "step", "message",
                       "timings_display", "duration", "error", "celery_task_id",
                       "started_at", "finished_at", "created_at", "updated_at")  # fmt: skip
    fields = readonly_fields
    change_form_template = "admin/pipeline/pipelinejob/change_form.html"

    class Media:
        css = STATIC_MEDIA["css"]
        js = STATIC_MEDIA["js"]

    @admin.display(description="progress", ordering="progress")
    def progress_percent(self, obj: PipelineJob) -> str:
        return fmt_percent(obj.progress)

    @admin.display(description="step", ordering="step")
    def step_short(self, obj: PipelineJob) -> str:
        return _truncated(obj.step, "9em")

    @admin.display(description="message")
    def message_short(self, obj: PipelineJob) -> str:
        return _truncated(obj.message, "16em")

    @admin.display(description="time")
    def duration(self, obj: PipelineJob) -> str:
        if obj.started_at is None or obj.finished_at is None:
            return "\u2014"
        return fmt_seconds((obj.finished_at - obj.started_at).total_seconds())

    @admin.display(description="step timings")
    def timings_display(self, obj: PipelineJob) -> str:
        if not obj.timings:
            return "\u2014"
        return format_html_join(
            ", ", "{} {}", ((step, fmt_seconds(s)) for step, s in obj.timings.items())
        )

    def has_add_permission(self, request) -> bool:
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress/", view(self.progress_view), name="pipeline_job_progress"),
            path("<int:pk>/cancel/", view(require_POST(self.cancel_view)),
                 name="pipeline_job_cancel"),
            path("<int:pk>/retry/", view(require_POST(self.retry_view)), name="pipeline_job_retry"),
            *super().get_urls(),
        ]  # fmt: skip

    def _job(self, request: HttpRequest, pk: int, *, change: bool) -> PipelineJob:
        job = PipelineJob.objects.filter(pk=pk).first()
        if job is None:
            raise Http404
        allowed = self.has_change_permission if change else self.has_view_permission
        if not allowed(request, job):
            raise PermissionDenied
        return job

    def progress_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        return JsonResponse(job_progress(job=self._job(request, pk, change=False)))

    def _back(self, request: HttpRequest, job: PipelineJob) -> HttpResponseRedirect:
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}):
            target = reverse("admin:pipeline_pipelinejob_change", args=[job.pk])
        return HttpResponseRedirect(target)

    def cancel_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self._job(request, pk, change=True)
        try:
            job = job_cancel(job=job)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            note = " It stops after its current step." if job.is_stopping else ""
            self.message_user(request, f"Cancelled job {job.pk}.{note}")
        return self._back(request, job)

    def retry_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        job = self._job(request, pk, change=True)
        try:
            new = job_retry(job=job)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return self._back(request, job)
        self.message_user(request, f"Started job {new.pk}: it resumes after the finished steps.")
        return HttpResponseRedirect(reverse("admin:pipeline_pipelinejob_change", args=[new.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        job = self.get_object(request, object_id)
        if job is not None:
            extra_context["job_panel"] = {
                "progress_url": reverse("admin:pipeline_job_progress", args=[job.pk]),
                "job": job,
                "next": request.get_full_path(),
            }
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(ModelVariant)
class ModelVariantAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cpr_target_display", "cpr_measured_display",
                    "sparsity_display", "test_accuracy_display")  # fmt: skip
    list_filter = ("family",)
    readonly_fields = ("family", "label", "cpr_target_display", "cpr_measured_display",
                       "sparsity_display", "train_accuracy_display", "val_accuracy_display",
                       "test_accuracy_display", "checkpoint", "checkpoint_sha256", "details")  # fmt: skip
    fields = readonly_fields

    class Media:
        css = STATIC_MEDIA["css"]

    cpr_target_display = ModelVariantInline.cpr_target_display
    cpr_measured_display = ModelVariantInline.cpr_measured_display
    sparsity_display = ModelVariantInline.sparsity_display
    test_accuracy_display = ModelVariantInline.test_accuracy_display

    @admin.display(description="train accuracy")
    def train_accuracy_display(self, obj: ModelVariant) -> str:
        return fmt_percent(obj.train_accuracy)

    @admin.display(description="validation accuracy")
    def val_accuracy_display(self, obj: ModelVariant) -> str:
        return fmt_percent(obj.val_accuracy)


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ("key_short", "class_short", "split", "family", "thumbnail")
    list_filter = ("family", "class_name")
    search_fields = ("key",)
    readonly_fields = [f.name for f in SourceImage._meta.fields] + ["preview"]

    class Media:
        css = STATIC_MEDIA["css"]

    @admin.display(description="key", ordering="key")
    def key_short(self, obj: SourceImage) -> str:
        return _truncated(obj.key, "14em")

    @admin.display(description="class", ordering="class_name")
    def class_short(self, obj: SourceImage) -> str:
        return _truncated(obj.class_name, "9em")

    @admin.display(description="image")
    def thumbnail(self, obj: SourceImage) -> str:
        return _thumb(obj.file, 48)

    @admin.display(description="preview")
    def preview(self, obj: SourceImage) -> str:
        return _thumb(obj.file, 256, alt=obj.class_name)


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("image_short", "variant_short", "kind", "method_short", "catch_short",
                    "is_blank", "thumbnail")  # fmt: skip
    list_filter = ("kind", "method", "catch", "is_blank", "variant__family", "variant__label")
    readonly_fields = ["preview", *(f.name for f in Stimulus._meta.fields)]
    list_select_related = ("image", "variant__family")

    class Media:
        css = STATIC_MEDIA["css"]

    @admin.display(description="image", ordering="image__key")
    def image_short(self, obj: Stimulus) -> str:
        return _truncated(obj.image, "8em")

    @admin.display(description="variant", ordering="variant__cpr_target")
    def variant_short(self, obj: Stimulus) -> str:
        return _truncated(obj.variant, "6em")

    @admin.display(description="method", ordering="method")
    def method_short(self, obj: Stimulus) -> str:
        return _truncated(obj.method, "6em")

    @admin.display(description="catch", ordering="catch")
    def catch_short(self, obj: Stimulus) -> str:
        return _truncated(obj.catch or "real", "5em")

    @admin.display(description="map")
    def thumbnail(self, obj: Stimulus) -> str:
        return _thumb(obj.file, 48)

    @admin.display(description="stimulus")
    def preview(self, obj: Stimulus) -> str:
        """The map as a rater sees it, next to its source photo."""
        return format_html(
            '<span class="xai-preview">{}{}</span>',
            _thumb(obj.file, 256, alt="stimulus"),
            _thumb(obj.image.file, 256, alt="source photo"),
        )
