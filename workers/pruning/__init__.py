"""Pruning to an exact compression ratio (CPR), per-layer reports, schedules, checkpoints.

Public entry points: :func:`prune_to_cpr`, :func:`conv_cpr`, :func:`layer_report`,
:func:`save_checkpoint` / :func:`load_checkpoint`, :func:`clone_model` and
:func:`retrain_after_pruning`. See the submodules for the invariants.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from workers.pruning.checkpoint import (
    clone_model,
    load_checkpoint,
    refresh_pruned_weights,
    save_checkpoint,
    sha256_file,
)
from workers.pruning.counting import (
    LayerReport,
    conv_cpr,
    dense_counts,
    layer_report,
    modules_in_scope,
    scope_cpr,
    scope_types,
)
from workers.pruning.schedules import SCHEDULES, ScheduleConfig, retrain_after_pruning
from workers.pruning.structured import STRUCTURED_CPR_RTOL, prune_structured
from workers.pruning.unstructured import prune_global_l1, prune_layerwise_l1

log = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("global", "layerwise", "structured")
UNSTRUCTURED_CPR_RTOL = 1e-3  # ±0.1 %


def prune_to_cpr(
    model: nn.Module,
    cpr: float,
    *,
    scope: str = "conv",
    method: str = "global",
    example_input: torch.Tensor | None = None,
) -> nn.Module:
    """Prune ``model`` in place so that weights in ``scope`` reach compression ratio ``cpr``.

    ``scope``: "conv" (Conv2d weights only, the paper) or "all" (Conv2d + Linear).
    ``method``: "global" / "layerwise" L1 unstructured (masks via
    ``torch.nn.utils.prune``; exact to ±0.1 %, checked here) or "structured"
    (filters removed; within ``STRUCTURED_CPR_RTOL``; needs ``example_input``
    of shape (1, 3, H, W), default 224x224, or 64x64 for the demo net).
    Weights out of scope and all biases are never touched (for "structured",
    dependent input channels of the next layer necessarily go with a filter).
    Calling again with a larger ``cpr`` continues from the current masks.
    """
    scope_types(scope)
    if method not in METHODS:
        raise ValueError(f"unknown pruning method {method!r}; expected one of {METHODS}")
    if method == "structured":
        if example_input is None:
            from workers.models import DemoVGG

            size = 64 if isinstance(model, DemoVGG) else 224
            example_input = torch.zeros(1, 3, size, size)
        dev = next(model.parameters()).device
        prune_structured(model, cpr, scope=scope, example_input=example_input.to(dev))
    else:
        (prune_global_l1 if method == "global" else prune_layerwise_l1)(model, cpr, scope=scope)
        achieved = scope_cpr(model, scope)
        if abs(achieved / cpr - 1) > UNSTRUCTURED_CPR_RTOL:
            raise RuntimeError(f"pruning reached CPR {achieved:.6g}, target {cpr}")
    for row in layer_report(model, scope):
        log.debug(
            "%s %s: %d/%d left (sparsity %.4f)",
            row.name, row.kind, row.remaining, row.total, row.sparsity,
        )  # fmt: skip
    return model


__all__ = [
    "METHODS",
    "SCHEDULES",
    "STRUCTURED_CPR_RTOL",
    "UNSTRUCTURED_CPR_RTOL",
    "LayerReport",
    "ScheduleConfig",
    "clone_model",
    "conv_cpr",
    "dense_counts",
    "layer_report",
    "load_checkpoint",
    "modules_in_scope",
    "prune_to_cpr",
    "refresh_pruned_weights",
    "retrain_after_pruning",
    "save_checkpoint",
    "scope_cpr",
    "sha256_file",
]
