"""Unstructured L1 magnitude pruning, global or layer-wise, to an exact CPR.

Exactness: instead of a float ``amount`` (a fraction of the weights still
unpruned, rounded by torch), we pass the *integer* number of weights to remove
now: ``remaining_now - round(total / cpr)``. torch applies an int amount to the
still-unpruned entries only, so the step CPR a -> b removes exactly the share
``1 - a/b`` of the remaining weights up to rounding of one weight, and the
achieved CPR equals ``total / round(total / cpr)`` (relative error
< 1 / (2 * remaining) — far inside the ±0.1 % we assert).

Masks accumulate (PruningContainer), pruned weights stay zero while the model
remains reparametrised; we never call ``prune.remove`` before fine-tuning,
which would let pruned weights grow back (PROTOCOL §1).
"""

from __future__ import annotations

import math

from torch import nn
from torch.nn.utils import prune

from workers.pruning.counting import dense_counts, modules_in_scope, unmasked_weights


def _target_remaining(total: int, cpr: float) -> int:
    if not cpr >= 1.0 or math.isinf(cpr):
        raise ValueError(f"CPR must be a finite number >= 1, got {cpr}")
    return max(1, round(total / cpr))


def prune_global_l1(model: nn.Module, cpr: float, *, scope: str) -> None:
    """One global L1 ranking over all weights in scope; layers end up with different sparsity."""
    mods = modules_in_scope(model, scope)
    total = dense_counts(model)[scope]
    target = _target_remaining(total, cpr)
    now = sum(unmasked_weights(m) for _, m in mods)
    if target > now:
        raise ValueError(
            f"model already at CPR {total / now:.4g} over {scope!r}; cannot prune back to {cpr}"
        )
    prune.global_unstructured(
        [(m, "weight") for _, m in mods],
        pruning_method=prune.L1Unstructured,
        amount=now - target,
    )


def _apportion(totals: list[int], caps: list[int], target: int, cpr: float) -> list[int]:
    """Per-layer remaining counts summing to ``target``: floor(total/cpr) plus largest remainders.

    Never exceeds a layer's current remaining count ``caps`` (pruning only removes).
    """
    base = [min(c, math.floor(t / cpr)) for t, c in zip(totals, caps, strict=True)]
    left = target - sum(base)
    order = sorted(
        range(len(totals)), key=lambda i: (-(totals[i] / cpr - math.floor(totals[i] / cpr)), i)
    )
    for i in order:
        if left <= 0:
            break
        if base[i] < caps[i]:
            base[i] += 1
            left -= 1
    return base


def prune_layerwise_l1(model: nn.Module, cpr: float, *, scope: str) -> None:
    """Every layer in scope pruned to the same CPR (its own L1 ranking), total exact."""
    mods = modules_in_scope(model, scope)
    dense = dense_counts(model)["layers"]
    totals = [dense[n] for n, _ in mods]
    caps = [unmasked_weights(m) for _, m in mods]
    target = _target_remaining(sum(totals), cpr)
    if target > sum(caps):
        raise ValueError(f"model already pruned past CPR {cpr} over {scope!r}")
    keep = _apportion(totals, caps, target, cpr)
    for (_, m), cap, k in zip(mods, caps, keep, strict=True):
        prune.l1_unstructured(m, "weight", amount=cap - k)
