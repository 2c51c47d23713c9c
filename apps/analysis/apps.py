from django.apps import AppConfig


class AnalysisConfig(AppConfig):
    name = "apps.analysis"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Analysis"
