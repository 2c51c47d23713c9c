"""Counting weights in scope, compression ratio (CPR) and per-layer reports.

CPR (PROTOCOL §1) = weights in scope before pruning / weights in scope left.
It is always over the pruned layers (conv only by default), never the whole net.

Counting rule, and why: a reparametrised module's ``.weight`` is a plain
attribute recomputed by a forward pre-hook, so it is stale after
``optimizer.step()`` or ``load_state_dict`` until the next forward. We never
read it: remaining weights are ``count_nonzero(weight_orig * weight_mask)``,
computed fresh, and ``count_nonzero(weight)`` for modules that are not
reparametrised. For structured pruning (channels really removed) the "before"
count is the dense count, stored on the model as ``DENSE_ATTR`` and in
checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

SCOPES: dict[str, tuple[type[nn.Module], ...]] = {
    "conv": (nn.Conv2d,),
    "all": (nn.Conv2d, nn.Linear),
}
DENSE_ATTR = "xai_dense_weights"  # {"conv": int, "all": int, "layers": {name: int}}


def scope_types(scope: str) -> tuple[type[nn.Module], ...]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {sorted(SCOPES)}")
    return SCOPES[scope]


def modules_in_scope(model: nn.Module, scope: str) -> list[tuple[str, nn.Module]]:
    """(name, module) for every module whose ``weight`` is in ``scope``, in model order."""
    types = scope_types(scope)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, types)]


def tensor_attr(module: nn.Module, name: str) -> torch.Tensor:
    """``module.<name>`` as a tensor (typed access to ``weight``, ``weight_orig``, ...)."""
    t = getattr(module, name)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.{name} is not a tensor")
    return t


def weight_numel(module: nn.Module) -> int:
    """Dense size of the module's weight (``weight_orig`` when reparametrised)."""
    return tensor_attr(module, "weight_orig" if is_reparametrised(module) else "weight").numel()


def is_reparametrised(module: nn.Module, name: str = "weight") -> bool:
    return hasattr(module, f"{name}_orig") and hasattr(module, f"{name}_mask")


def effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the next forward will use, recomputed (never the stale attribute)."""
    if is_reparametrised(module):
        return tensor_attr(module, "weight_orig").detach() * tensor_attr(module, "weight_mask")
    return tensor_attr(module, "weight").detach()


def remaining_weights(module: nn.Module) -> int:
    """Non-zero effective weights (what CPR counts)."""
    return int(torch.count_nonzero(effective_weight(module)))


def unmasked_weights(module: nn.Module) -> int:
    """Entries the mask still lets through (what torch's int ``amount`` is taken from).

    Equal to :func:`remaining_weights` unless some unmasked weight is exactly 0;
    pruning by this count removes such zeros first (smallest L1), so the
    non-zero count still lands on the target.
    """
    if is_reparametrised(module):
        return int(torch.count_nonzero(tensor_attr(module, "weight_mask")))
    return tensor_attr(module, "weight").numel()


def dense_counts(model: nn.Module) -> dict:
    """Dense per-scope and per-layer weight counts: stored value if any, else current numel."""
    stored = getattr(model, DENSE_ATTR, None)
    if isinstance(stored, dict):
        return stored
    layers = {n: weight_numel(m) for n, m in modules_in_scope(model, "all")}
    conv = {n for n, _ in modules_in_scope(model, "conv")}
    return {
        "conv": sum(v for n, v in layers.items() if n in conv),
        "all": sum(layers.values()),
        "layers": layers,
    }


def remember_dense_counts(model: nn.Module) -> dict:
    """Pin the dense counts on ``model`` (before the first structured step)."""
    counts = dense_counts(model)
    setattr(model, DENSE_ATTR, counts)
    return counts


def scope_cpr(model: nn.Module, scope: str = "conv") -> float:
    """CPR over ``scope``: dense weights / non-zero effective weights."""
    total = dense_counts(model)[scope]
    left = sum(remaining_weights(m) for _, m in modules_in_scope(model, scope))
    return total / left if left else float("inf")


def conv_cpr(model: nn.Module) -> float:
    """CPR over Conv2d weights (the paper's definition)."""
    return scope_cpr(model, "conv")


@dataclass(frozen=True)
class LayerReport:
    name: str
    kind: str  # "conv" | "linear"
    total: int  # dense weight count of this layer
    remaining: int  # non-zero effective weights now
    sparsity: float  # 1 - remaining / total
    in_scope: bool

    def to_dict(self) -> dict:
        return asdict(self)


def layer_report(model: nn.Module, scope: str = "conv") -> list[LayerReport]:
    """One row per Conv2d/Linear layer, in model order; ``in_scope`` marks pruned ones."""
    dense = dense_counts(model)["layers"]
    in_scope = {n for n, _ in modules_in_scope(model, scope)}
    rows = []
    for name, m in modules_in_scope(model, "all"):
        total = dense.get(name, weight_numel(m))
        left = remaining_weights(m)
        rows.append(
            LayerReport(
                name=name,
                kind="conv" if isinstance(m, nn.Conv2d) else "linear",
                total=int(total),
                remaining=left,
                sparsity=1.0 - left / total if total else 0.0,
                in_scope=name in in_scope,
            )
        )
    return rows
