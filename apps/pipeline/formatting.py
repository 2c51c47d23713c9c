"""How the pipeline admin writes numbers: one place, so every page agrees.

Accuracy and other fractions as a percentage with one decimal, CPRs with two
decimals, durations as seconds with one decimal. ``None`` shows as an em dash.
"""

from __future__ import annotations

DASH = "\u2014"


def fmt_percent(value: float | None) -> str:
    """A fraction in [0, 1] -> ``"93.5%"``."""
    return DASH if value is None else f"{100 * value:.1f}%"


def fmt_cpr(value: float | None) -> str:
    """A compression ratio -> ``"8.00"``."""
    return DASH if value is None else f"{value:.2f}"


def fmt_seconds(value: float | None) -> str:
    """Seconds -> ``"12.3 s"``."""
    return DASH if value is None else f"{value:.1f} s"
