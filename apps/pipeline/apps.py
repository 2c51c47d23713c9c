from django.apps import AppConfig


class PipelineConfig(AppConfig):
    name = "apps.pipeline"
    label = "pipeline"
    verbose_name = "Models and stimuli"
    default_auto_field = "django.db.models.BigAutoField"
