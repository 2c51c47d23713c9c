"""What a publication asks of MTurk, computed without the network.

The options a researcher may set (``Publication.options``), checked with
messages that name the option; the qualification requirements, HIT sizes and
ExternalQuestion XML they become; and the cost MTurk will charge. Kept apart
from :mod:`.mturk` so the plan and the cost estimate are plain functions of
the publication, and what ``publish`` sends is exactly what was shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from django.conf import settings

from apps.recruitment.models import Publication
from apps.recruitment.providers.base import ProviderError, money

APPROVAL_RATE = "000000000000000000L0"
APPROVED_HITS = "00000000000000000040"
LOCALE = "00000000000000000071"
MASTERS = {False: "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH", True: "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"}
GUARDED = "DiscoverPreviewAndAccept"  # workers who may not accept do not see the HIT either
QUESTION_NS = (
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/"
    "ExternalQuestion.xsd"
)
FEE = Decimal("0.20")  # MTurk's commission on rewards and bonuses
MIN_FEE = Decimal("0.01")  # per assignment
LARGE_HIT = 10  # assignments from which a HIT costs another 20 %
_YEAR_SECONDS = 365 * 24 * 3600
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _int(options: dict[str, Any], name: str, default: int | None, low: int, high: int):
    value = options.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProviderError(
            f"MTurk option '{name}' must be a whole number from {low} to {high} (got {value!r}).",
            code="bad_mturk_option",
        )
    return value


@dataclass(frozen=True)
class HitSpec:
    """Every parameter of the HIT type and the HITs, from the publication and its options."""

    title: str
    description: str
    reward: str  # "1.50": MTurk takes money as a string
    keywords: str
    assignment_seconds: int
    auto_approval_seconds: int
    lifetime_seconds: int
    frame_height: int
    qualifications: list[dict[str, Any]]
    qualification_words: list[str]
    sizes: list[int]  # assignments per HIT, in order

    def question(self, url: str) -> str:
        """The ExternalQuestion XML that makes MTurk show ``url`` in its frame."""
        return (
            f'<ExternalQuestion xmlns="{QUESTION_NS}">'
            f"<ExternalURL>{escape(url)}</ExternalURL>"
            f"<FrameHeight>{self.frame_height}</FrameHeight>"
            "</ExternalQuestion>"
        )

    def sizes_words(self) -> str:
        """``3 HITs: 2 × 9 assignments + 1 × 4``."""
        groups: list[tuple[int, int]] = []
        for size in self.sizes:
            if groups and groups[-1][1] == size:
                groups[-1] = (groups[-1][0] + 1, size)
            else:
                groups.append((1, size))
        parts = [f"{count} × {size}" for count, size in groups]
        parts[0] += " assignments" if groups[0][1] != 1 else " assignment"
        hits = len(self.sizes)
        return f"{hits} HIT{'s' if hits != 1 else ''}: {' + '.join(parts)}"


def hit_spec(publication: Publication, *, sandbox: bool) -> HitSpec:
    """Validate the publication for MTurk and say what it becomes; ProviderError names a fault.

    Options (all optional): ``min_approval_rate`` (0-100, default 90; 0 drops
    the requirement), ``min_approved_hits``, ``locales`` (ISO country codes),
    ``masters`` (bool), ``lifetime_hours`` (72), ``assignment_duration_minutes``
    (3 x the estimate, at least 30), ``auto_approval_days`` (3),
    ``max_assignments_per_hit`` (settings.MTURK_MAX_ASSIGNMENTS_PER_HIT),
    ``keywords``, ``frame_height`` (px, 0 = fit the window). At most four
    qualification requirements come out of them, within MTurk's ten.
    """
    options = dict(publication.options or {})
    known = {
        "min_approval_rate", "min_approved_hits", "locales", "masters", "lifetime_hours",
        "assignment_duration_minutes", "auto_approval_days", "max_assignments_per_hit",
        "keywords", "frame_height",
    }  # fmt: skip
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProviderError(
            f"Unknown MTurk option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}.",
            code="bad_mturk_option",
        )
    if publication.reward <= 0:
        raise ProviderError("An MTurk HIT needs a reward above 0 USD.", code="reward_required")
    if publication.places < 1:
        raise ProviderError("An MTurk publication needs at least one place.", code="bad_places")
    quals: list[dict[str, Any]] = []
    words: list[str] = []
    rate = _int(options, "min_approval_rate", 90, 0, 100)
    if rate:
        quals.append(_qual(APPROVAL_RATE, "GreaterThan", IntegerValues=[rate]))
        words.append(f"approval rate above {rate} %")
    approved = _int(options, "min_approved_hits", None, 0, 10**9)
    if approved:
        quals.append(_qual(APPROVED_HITS, "GreaterThanOrEqualTo", IntegerValues=[approved]))
        words.append(f"at least {approved} approved HITs")
    locales = options.get("locales")
    if locales is not None:
        if (
            not isinstance(locales, list)
            or not locales
            or not all(isinstance(c, str) and _COUNTRY.match(c) for c in locales)
        ):
            raise ProviderError(
                "MTurk option 'locales' must be a list of ISO country codes such as "
                f'["US", "GB"] (got {locales!r}).',
                code="bad_mturk_option",
            )
        quals.append(_qual(LOCALE, "In", LocaleValues=[{"Country": c} for c in locales]))
        words.append(f"located in {', '.join(locales)}")
    masters = options.get("masters", False)
    if not isinstance(masters, bool):
        raise ProviderError(
            f"MTurk option 'masters' must be true or false (got {masters!r}).",
            code="bad_mturk_option",
        )
    if masters:
        quals.append(_qual(MASTERS[sandbox], "Exists"))
        words.append("Masters only")
    keywords = options.get("keywords", "image, classification, research, survey")
    if not isinstance(keywords, str) or len(keywords) > 1000:
        raise ProviderError(
            "MTurk option 'keywords' must be text of at most 1000 characters.",
            code="bad_mturk_option",
        )
    if len(publication.description) > 2000 or len(publication.title) > 128:
        raise ProviderError(
            "MTurk takes a title of at most 128 and a description of at most 2000 characters.",
            code="bad_mturk_option",
        )
    per_hit = _int(
        options, "max_assignments_per_hit", settings.MTURK_MAX_ASSIGNMENTS_PER_HIT, 1, 10**6
    )
    full, rest = divmod(publication.places, per_hit)
    minutes = max(30, 3 * publication.estimated_minutes)
    return HitSpec(
        title=publication.title,
        description=publication.description,
        reward=f"{money(publication.reward):.2f}",
        keywords=keywords,
        assignment_seconds=60
        * _int(options, "assignment_duration_minutes", minutes, 1, _YEAR_SECONDS // 60),
        auto_approval_seconds=86400 * _int(options, "auto_approval_days", 3, 0, 30),
        lifetime_seconds=3600 * _int(options, "lifetime_hours", 72, 1, _YEAR_SECONDS // 3600),
        frame_height=_int(options, "frame_height", 0, 0, 10**5),
        qualifications=quals,
        qualification_words=words,
        sizes=[per_hit] * full + ([rest] if rest else []),
    )


def _qual(type_id: str, comparator: str, **values: Any) -> dict[str, Any]:
    return {
        "QualificationTypeId": type_id,
        "Comparator": comparator,
        **values,
        "ActionsGuarded": GUARDED,
    }


def fees(reward: Decimal, sizes: list[int]) -> tuple[Decimal, int]:
    """MTurk's fees for these HITs, and how many assignments pay the large-HIT surcharge.

    20 % of each assignment's reward (at least 0.01 USD), plus 20 % more for
    assignments of HITs with 10 or more assignments.
    """
    base = max(money(reward * FEE), MIN_FEE)
    large = sum(size for size in sizes if size >= LARGE_HIT)
    total = base * sum(sizes) + money(reward * FEE) * large
    return money(total), large
