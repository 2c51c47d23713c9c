"""Grad-CAM and Grad-CAM++ with one forward pass and ``torch.autograd.grad``.

Grad-CAM (Selvaraju et al.; PROTOCOL §2): with A (N, K, h, w) the target
layer's output and y_c the class score (logit),

    alpha_k = mean_{i,j} dy_c / dA_k[i, j]             # (N, K)
    cam     = ReLU(sum_k alpha_k * A_k)                 # (N, h, w)

then bilinearly up-sampled to the input size (align_corners=False) and min-max
normalised per image to [0, 1] (a constant map becomes all zeros; see
:func:`workers.render.is_blank`).

Efficiency and safety (STYLE 7, 9):
- The forward runs under ``torch.no_grad()``; the target layer's forward hook
  switches grad mode on and returns its output *detached* with
  ``requires_grad=True``, and parameters are frozen for the call, so the
  autograd graph starts at the target layer: the prefix runs at inference
  cost, only the head is recorded, and
  ``torch.autograd.grad(score, A)`` computes only dscore/dA — no weight
  gradients, no ``.grad`` fields touched, no ``loss.backward()``.
- For torchvision VGG-16 the default layer is ``features[29]`` (post in-place
  ReLU); because we read the ReLU module's *output* and differentiate w.r.t.
  that same tensor, activation and gradient are consistent.
- Hooks are registered in a context manager and removed even if the forward or
  the gradient raises.
- Scores of different images are independent (eval mode), so the gradient of
  the batch sum gives every image its own dy_c/dA.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from workers.models import default_target_layer, module_name


@dataclass
class CamResult:
    maps: torch.Tensor  # (N, H, W) float in [0, 1], on the model's device
    logits: torch.Tensor  # (N, K) detached
    targets: torch.Tensor  # (N,) int64 class explained
    layer: str  # dotted module name, e.g. "features.29"


@contextmanager
def capture_layer_output(layer: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``store["A"]`` is ``layer``'s output, detached, grad-enabled."""
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"target layer must output a tensor, got {type(out).__name__}")
        # The prefix ran under no_grad (cheapest path); record the head from here on.
        # The caller's ``torch.no_grad()`` block restores the previous mode on exit.
        torch.set_grad_enabled(True)
        a = out.detach().requires_grad_(True)
        store["A"] = a
        return a

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Temporarily mark every parameter ``requires_grad=False`` (restored on exit).

    With parameters frozen and the hooked activation as the only leaf that
    requires grad, autograd records nothing before the target layer and only
    the (small) head after it, so a CAM costs about one inference forward.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def check_targets(targets: torch.Tensor | list[int] | None, n: int) -> torch.Tensor | None:
    if targets is None:
        return None
    t = torch.as_tensor(targets, dtype=torch.int64).flatten()
    if t.numel() != n:
        raise ValueError(f"targets has {t.numel()} entries but the batch has {n} images")
    return t


def layer_activations_and_grads(
    model: nn.Module,
    images: torch.Tensor,
    *,
    targets: torch.Tensor | list[int] | None,
    layer: nn.Module | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """One forward + autograd.grad -> (A (N,K,h,w), dY/dA (N,K,h,w), logits, targets, layer name)."""
    n = images.shape[0]
    tgt = check_targets(targets, n)
    layer = layer if layer is not None else default_target_layer(model)
    name = module_name(model, layer)
    dev = next(model.parameters()).device
    images = images.to(dev)
    with frozen_parameters(model), capture_layer_output(layer) as store:
        with torch.no_grad():  # the hook switches grad on at the target layer
            logits = model(images)  # (N, num_classes)
        if "A" not in store:
            raise RuntimeError(f"layer {name!r} was not called in the forward pass")
        if tgt is None:
            tgt = logits.detach().argmax(1)
        tgt = tgt.to(dev)
        if int(tgt.min()) < 0 or int(tgt.max()) >= logits.shape[1]:
            raise ValueError(f"targets must be class indices in [0, {logits.shape[1]})")
        score = logits.gather(1, tgt[:, None]).sum()
        if not score.requires_grad:
            raise RuntimeError(f"no gradient path from layer {name!r} to the class scores")
        (grads,) = torch.autograd.grad(score, store["A"])
    return store["A"].detach(), grads, logits.detach(), tgt, name


def normalize_maps(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) -> bilinear to (N, H, W), then per-image min-max to [0, 1]."""
    up = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    flat = up.flatten(1)  # (N, H*W)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    out = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return out.view_as(up)


def _cam(
    model: nn.Module,
    images: torch.Tensor,
    *,
    targets: torch.Tensor | list[int] | None,
    layer: nn.Module | None,
    plus_plus: bool,
) -> CamResult:
    was_training = model.training
    model.eval()
    try:
        a, g, logits, tgt, name = layer_activations_and_grads(
            model, images, targets=targets, layer=layer
        )
    finally:
        model.train(was_training)
    if a.dim() != 4:
        raise ValueError(f"CAM layer output must be (N, K, h, w), got {tuple(a.shape)}")
    if plus_plus:
        # Grad-CAM++ (Chattopadhay et al.) with the exp-score closed form used by
        # pytorch-grad-cam: alpha = g^2 / (2 g^2 + sum(A) g^3).
        g2, g3 = g.pow(2), g.pow(3)
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * g.clamp_min(0)).sum((2, 3))  # (N, K)
    else:
        weights = g.mean((2, 3))  # (N, K)
    cam = torch.relu((weights[:, :, None, None] * a).sum(1))  # (N, h, w)
    maps = normalize_maps(cam, (int(images.shape[-2]), int(images.shape[-1])))
    return CamResult(maps=maps, logits=logits, targets=tgt, layer=name)


def gradcam_result(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer: nn.Module | None = None
) -> CamResult:
    """Grad-CAM maps plus logits, explained targets and the layer name."""
    return _cam(model, images, targets=targets, layer=layer, plus_plus=False)


def gradcam(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer: nn.Module | None = None
) -> torch.Tensor:
    """Grad-CAM for a (N, 3, H, W) normalised batch -> (N, H, W) in [0, 1].

    ``targets`` (length N) default to the predicted classes; ``layer`` to
    :func:`workers.models.default_target_layer`.
    """
    return gradcam_result(model, images, targets=targets, layer=layer).maps


def gradcam_pp_result(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer: nn.Module | None = None
) -> CamResult:
    """Grad-CAM++ maps plus logits, explained targets and the layer name."""
    return _cam(model, images, targets=targets, layer=layer, plus_plus=True)


def gradcam_pp(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer: nn.Module | None = None
) -> torch.Tensor:
    """Grad-CAM++ -> (N, H, W) in [0, 1]; same contract as :func:`gradcam`."""
    return gradcam_pp_result(model, images, targets=targets, layer=layer).maps
