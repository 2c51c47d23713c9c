"""Recruitment in the admin: publish a study, sync, pay, stop — each with the command's confirmation.

The steps are the services the commands call (``apps.recruitment.services``):
publish shows the plan and the cost estimate before anything is sent; pay
shows every decision (a dry run) before anything is approved or paid. Like the
studies' admins, every list shows only the studies the user may see.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from apps.core.exceptions import ApplicationError
from apps.recruitment.models import ExternalCall, Provider, Publication, Submission
from apps.recruitment.services import (
    publication_close,
    publication_publish,
    publication_sync,
    publications_prepare,
    study_pay,
    study_publish_plan,
)
from apps.recruitment.services.locks import study_recruitment_lock
from apps.recruitment.services.paying import HOLD
from apps.studies.admin import VisibleStudiesMixin, by_study
from apps.studies.models import Study
from apps.studies.permissions import studies_visible_to


class PublishForm(forms.Form):
    provider = forms.ChoiceField(choices=Provider.choices)
    sandbox = forms.BooleanField(required=False, help_text="MTurk's sandbox: nothing is paid.")
    reward = forms.DecimalField(
        max_digits=8, decimal_places=2, min_value=0, required=False,
        help_text="Per participant (USD on MTurk). Required for Prolific and MTurk.",
    )  # fmt: skip
    bonus = forms.DecimalField(max_digits=8, decimal_places=2, min_value=0, required=False)
    places = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: enough participants to fill every slot."
    )
    minutes = forms.IntegerField(min_value=1, required=False, label="Estimated minutes")
    redirect_url = forms.URLField(
        required=False, assume_scheme="https", label="Plain link: redirect at the end"
    )
    options = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text='JSON, e.g. {"locales": ["US"], "masters": false, "lifetime_hours": 48}',
    )  # fmt: skip

    def clean_options(self):
        text = self.cleaned_data["options"].strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Options must be a JSON object.")
        return value


@admin.register(Publication)
class PublicationAdmin(VisibleStudiesMixin, admin.ModelAdmin):
    study_path = "study"
    list_display = (
        "experiment",
        "provider",
        "sandbox",
        "status",
        "reward",
        "places",
        "external_id",
    )
    list_filter = (by_study("study"), "provider", "status", "sandbox")
    readonly_fields = [f.name for f in Publication._meta.fields]
    actions = ["sync", "pay", "close"]

    def has_add_permission(self, request) -> bool:
        return False  # publications are made by "Publish on a crowd provider" (a study action)

    def get_urls(self):
        view = self.admin_site.admin_view(self.publish_view)
        return [
            path("publish/<int:study_id>/", view, name="recruitment_publication_publish")
        ] + super().get_urls()

    def _prepare(self, study: Study, data: dict) -> list[Publication]:
        return publications_prepare(
            study=study,
            provider=data["provider"],
            sandbox=data["sandbox"],
            reward=data["reward"],
            bonus=data["bonus"],
            places=data["places"],
            estimated_minutes=data["minutes"],
            options=data["options"],
            completion_redirect_url=data["redirect_url"] or None,
        )

    def publish_view(self, request: HttpRequest, study_id: int) -> HttpResponse:
        """Form -> plan and cost (nothing kept) -> confirm -> publish."""
        study = get_object_or_404(studies_visible_to(request.user), pk=study_id)
        form = PublishForm(request.POST or None)
        context = {**self.admin_site.each_context(request), "study": study, "form": form}
        context["title"] = f"Publish '{study.name}' on a crowd provider"
        if request.method == "POST" and form.is_valid():
            try:
                with study_recruitment_lock(study):
                    if "confirm" not in request.POST:
                        with transaction.atomic():
                            plan = study_publish_plan(
                                publications=self._prepare(study, form.cleaned_data)
                            )
                            transaction.set_rollback(True)
                        context["plan"] = plan
                    else:
                        plan = study_publish_plan(
                            publications=self._prepare(study, form.cleaned_data)
                        )
                        for publication in plan.to_create:
                            publication_publish(publication=publication)
                            self.message_user(request, f"Published {publication}.")
                        if not plan.to_create:
                            self.message_user(request, "Nothing new to publish.")
                        return redirect("admin:recruitment_publication_changelist")
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return TemplateResponse(request, "admin/recruitment/publish.html", context)

    def _each(self, request, queryset, step, done: str) -> None:
        for publication in queryset:
            try:
                with study_recruitment_lock(publication.study):
                    result = step(publication=publication)
            except ApplicationError as exc:
                self.message_user(request, f"{publication}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, done.format(p=publication, r=result))

    @admin.action(description="Sync submissions from the provider")
    def sync(self, request, queryset):
        self._each(request, queryset, publication_sync, "{r.text}")

    @admin.action(description="Stop recruiting (expire HITs / stop the Prolific study)")
    def close(self, request, queryset):
        if "confirm" not in request.POST:
            return self._confirm(
                request, queryset, "close", "Stop recruiting on these?", [str(p) for p in queryset]
            )
        self._each(request, queryset, publication_close, "Closed {p}.")

    @admin.action(description="Pay: approve, reject with a reason, bonuses (shows a dry run first)")
    def pay(self, request, queryset):
        studies = {p.study for p in queryset}
        reason = request.POST.get("reject_reason", "").strip()
        for study in studies:
            try:
                report = study_pay(study=study, dry_run="confirm" not in request.POST,
                                   reject_reason=reason)  # fmt: skip
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return None
            if "confirm" not in request.POST:
                lines = [s.line() for s in report.syncs] + [d.line() for d in report.decisions]
                return self._confirm(
                    request, queryset, "pay", f"Pay study '{study.slug}'?", lines,
                    reject_reason=True, actionable=any(d.action != HOLD for d in report.decisions),
                )  # fmt: skip
            for decision in report.done:
                self.message_user(request, f"done: {decision.line()}")
            for error in report.errors:
                self.message_user(request, f"failed: {error}", messages.ERROR)
        return None

    def _confirm(self, request, queryset, action, question, lines, **extra) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": question,
            "lines": lines,
            "queryset": queryset,
            "action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
            "actionable": extra.get("actionable", True),
            "reject_reason": extra.get("reject_reason", False),
        }
        return TemplateResponse(request, "admin/recruitment/confirm.html", context)


@admin.register(Submission)
class SubmissionAdmin(VisibleStudiesMixin, admin.ModelAdmin):
    study_path = "publication__study"
    list_display = (
        "external_id", "worker_id", "publication", "provider_status", "decision",
        "decision_reason", "bonus_paid", "participation",
    )  # fmt: skip
    list_filter = ("decision", "provider_status", "publication__provider")
    search_fields = ("worker_id", "external_id")
    readonly_fields = [f.name for f in Submission._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExternalCall)
class ExternalCallAdmin(VisibleStudiesMixin, admin.ModelAdmin):
    study_path = "publication__study"
    list_display = ("key", "kind", "state", "external_id", "attempts", "updated_at", "error")
    list_filter = ("kind", "state")
    search_fields = ("key", "external_id")
    readonly_fields = [f.name for f in ExternalCall._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the ledger is what makes retries safe: never delete from it
