"""Stimulus image selection: N per class that every model variant gets right.

PROTOCOL §3: stimuli are test images predicted correctly by every model in
the study (the paper: 50 per class). Selection is seeded and independent of
the order variants are given in: candidates are sorted by key, shuffled with
``numpy.random.default_rng((seed, class_index))`` and the first
``per_class`` taken, then returned in key order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Selection:
    indices: list[int]  # positions into the candidate list, sorted by key
    shortfall: dict[int, int] = field(default_factory=dict)  # class -> images missing


def select_images(
    *,
    keys: Sequence[str],
    labels: torch.Tensor,
    predictions: Mapping[str, torch.Tensor],
    per_class: int,
    num_classes: int,
    seed: int,
) -> Selection:
    """Pick ``per_class`` indices per class among images all ``predictions`` get right.

    ``labels`` and each prediction tensor are (N,) int64 aligned with ``keys``.
    Classes with too few candidates give all they have; the gap is reported.
    """
    if per_class < 1:
        raise ValueError("per_class must be >= 1")
    n = len(keys)
    correct = torch.ones(n, dtype=torch.bool)
    for name, pred in predictions.items():
        if pred.shape != (n,):
            raise ValueError(f"predictions of {name!r} have shape {tuple(pred.shape)}, want ({n},)")
        correct &= pred.cpu() == labels.cpu()
    chosen: list[int] = []
    shortfall: dict[int, int] = {}
    for c in range(num_classes):
        cand = sorted(
            (i for i in range(n) if int(labels[i]) == c and bool(correct[i])), key=lambda i: keys[i]
        )
        perm = np.random.default_rng((seed, c)).permutation(len(cand))
        take = [cand[j] for j in perm[:per_class]]
        if len(take) < per_class:
            shortfall[c] = per_class - len(take)
        chosen += take
    return Selection(indices=sorted(chosen, key=lambda i: keys[i]), shortfall=shortfall)
