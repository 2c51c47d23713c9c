"""What the recruitment commands share: finding the study, asking before acting."""

from __future__ import annotations

from django.core.management import CommandError

from apps.studies.models import Study


def study_from_ref(ref: str) -> Study:
    """The study by slug, or by numeric id; the error lists the known slugs."""
    study = Study.objects.select_related("family").filter(slug=ref).first()
    if study is None and ref.isdigit():
        study = Study.objects.select_related("family").filter(pk=int(ref)).first()
    if study is None:
        known = ", ".join(Study.objects.values_list("slug", flat=True)[:20]) or "none"
        raise CommandError(f"No study '{ref}' (known: {known}).")
    return study


def confirmed(command, question: str, *, yes: bool) -> bool:
    """True when ``--yes`` was given or the user typed y; a non-interactive run without
    ``--yes`` is refused rather than taken as a yes."""
    if yes:
        return True
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        raise CommandError(
            "No terminal to confirm on: run again with --yes (or --dry-run to only look)."
        ) from None
    return answer.strip().lower() in ("y", "yes")
