"""Who is asking for a slot, and what they must not be given again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claimant:
    """A participation asking for work, with the exclusion rules that apply to it.

    Never a task twice; with ``one_per_image`` never a source image twice in
    this experiment; with ``across_study_id`` never an image the rater was
    given in any experiment of that study.
    """

    participation_id: int
    rater_id: int
    experiment_id: int
    experiment_code: str  # unique for ever: keys the per-process rank floor
    one_per_image: bool
    across_study_id: int | None = None
