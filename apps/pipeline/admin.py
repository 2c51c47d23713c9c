from django.contrib import admin, messages
from django.core.files.storage import default_storage
from django.utils.html import format_html

from apps.core.exceptions import ApplicationError
from apps.pipeline.models import ModelFamily, ModelVariant, PipelineJob, SourceImage, Stimulus
from apps.pipeline.selectors import family_latest_job
from apps.pipeline.services import job_create


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


class ModelVariantInline(admin.TabularInline):
    model = ModelVariant
    extra = 0
    can_delete = False
    fields = (
        "label",
        "cpr_target",
        "cpr_measured",
        "conv_sparsity",
        "test_accuracy",
        "checkpoint_sha256",
    )
    readonly_fields = fields
    show_change_link = True


@admin.register(ModelFamily)
class ModelFamilyAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "dataset",
        "architecture",
        "prune_method",
        "schedule",
        "latest_job",
    )
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("class_names", "target_layer")
    inlines = [ModelVariantInline]
    actions = ["run_pipeline"]

    @admin.display(description="latest job")
    def latest_job(self, obj: ModelFamily) -> str:
        job = family_latest_job(family=obj)
        if job is None:
            return "never run"
        return f"{job.status} {_percent(job.progress)} {job.step}"

    @admin.action(description="Run the pipeline (train, prune, explain)")
    def run_pipeline(self, request, queryset):
        for family in queryset:
            try:
                job = job_create(family=family)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"Queued job {job.pk} for {family.slug}.")


@admin.register(PipelineJob)
class PipelineJobAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "family",
        "status",
        "progress_percent",
        "step",
        "message",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "family")
    readonly_fields = [f.name for f in PipelineJob._meta.fields]

    @admin.display(description="progress")
    def progress_percent(self, obj: PipelineJob) -> str:
        return _percent(obj.progress)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelVariant)
class ModelVariantAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cpr_target", "cpr_measured", "conv_sparsity", "test_accuracy")
    list_filter = ("family",)
    readonly_fields = [f.name for f in ModelVariant._meta.fields]


@admin.register(SourceImage)
class SourceImageAdmin(admin.ModelAdmin):
    list_display = ("key", "class_name", "split", "family", "thumbnail")
    list_filter = ("family", "class_name")
    search_fields = ("key",)
    readonly_fields = [f.name for f in SourceImage._meta.fields]

    @admin.display(description="image")
    def thumbnail(self, obj: SourceImage) -> str:
        return format_html('<img src="{}" width="64">', default_storage.url(obj.file))


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("image", "variant", "kind", "method", "catch", "is_blank", "thumbnail")
    list_filter = ("kind", "method", "catch", "is_blank", "variant__family", "variant__label")
    readonly_fields = [f.name for f in Stimulus._meta.fields]
    list_select_related = ("image", "variant__family")

    @admin.display(description="map")
    def thumbnail(self, obj: Stimulus) -> str:
        return format_html('<img src="{}" width="64">', default_storage.url(obj.file))
