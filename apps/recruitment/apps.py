from django.apps import AppConfig


class RecruitmentConfig(AppConfig):
    name = "apps.recruitment"
    label = "recruitment"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Recruitment"
