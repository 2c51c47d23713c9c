"""Condition labels: parse the CPR and order conditions.

A label such as ``cpr2`` or ``cpr2-gradcampp`` carries the compression ratio
after ``cpr``; labels without one are valid and sort after, by name.
"""

from __future__ import annotations

import math
import re

_CPR = re.compile(r"^cpr(\d+(?:\.\d+)?)", re.IGNORECASE)
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


def parse_cpr(label: str) -> float | None:
    """Return the CPR in ``label`` (``cpr32-x`` -> 32.0), or None."""
    m = _CPR.match(label)
    return float(m.group(1)) if m else None


def condition_sort_key(label: str) -> tuple[float, str]:
    """Order by CPR, then by name; labels without a CPR come last."""
    cpr = parse_cpr(label)
    return (cpr if cpr is not None else math.inf, label)


def sort_conditions(labels) -> list[str]:
    return sorted({str(x) for x in labels}, key=condition_sort_key)


def safe_name(label: str) -> str:
    """A file-name-safe version of an experiment or condition label."""
    return re.sub(r"[^A-Za-z0-9_.+\-]+", "_", str(label)).strip("_") or "x"
