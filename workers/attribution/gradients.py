"""Input-gradient attributions: vanilla gradient, SmoothGrad, Integrated Gradients, Guided Grad-CAM.

All return (N, H, W) maps in [0, 1] (per-image min-max, like Grad-CAM) so
rendering and metrics treat every method alike. Channel reduction: the
maximum absolute value over RGB for gradients (Simonyan et al.), the absolute
sum for Integrated Gradients (a completeness-style total per pixel).

Integrated Gradients and SmoothGrad use Captum. Guided backprop is ours: a
context manager temporarily swaps every ``nn.ReLU``'s forward for a guided
ReLU (positive gradients through positive inputs only), which sidesteps
full-backward-hooks on torchvision's in-place ReLUs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from torch import nn

from workers.attribution.cam import check_targets, gradcam_result


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> per-image min-max to [0, 1]; constant maps become 0."""
    flat = x.flatten(1)
    lo = flat.min(1, keepdim=True).values
    span = flat.max(1, keepdim=True).values - lo
    return torch.where(
        span > 0, (flat - lo) / span.clamp_min(1e-12), torch.zeros_like(flat)
    ).view_as(x)


def _prepare(model: nn.Module, images: torch.Tensor, targets) -> tuple[torch.Tensor, torch.Tensor]:
    dev = next(model.parameters()).device
    images = images.to(dev)
    tgt = check_targets(targets, images.shape[0])
    if tgt is None:
        with torch.no_grad():
            tgt = model(images).argmax(1)
    return images, tgt.to(dev)


@contextmanager
def _eval(model: nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def vanilla_gradient(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer=None
) -> torch.Tensor:
    """|dy_c/dx| max over channels -> (N, H, W) in [0, 1]. ``layer`` is ignored."""
    with _eval(model):
        x, tgt = _prepare(model, images, targets)
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            score = model(x).gather(1, tgt[:, None]).sum()
            (g,) = torch.autograd.grad(score, x)  # (N, 3, H, W)
    return _minmax(g.abs().amax(1))


def smoothgrad(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer=None, samples: int = 16,
    noise: float = 0.15,
) -> torch.Tensor:  # fmt: skip
    """SmoothGrad (Smilkov et al.): mean |gradient| over ``samples`` noisy copies.

    Noise s.d. = ``noise`` x (max - min) of the batch, as in the paper.
    """
    with _eval(model):
        x, tgt = _prepare(model, images, targets)
        std = float(noise * (x.max() - x.min()))
        nt = NoiseTunnel(Saliency(model))
        attr = nt.attribute(
            x, nt_type="smoothgrad", nt_samples=samples, nt_samples_batch_size=samples,
            stdevs=std, target=tgt, abs=True,
        )  # fmt: skip  # (N, 3, H, W)
    return _minmax(attr.abs().amax(1))


def integrated_gradients(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer=None, steps: int = 32
) -> torch.Tensor:
    """Integrated Gradients from a zero baseline (= the mean colour after normalisation)."""
    with _eval(model):
        x, tgt = _prepare(model, images, targets)
        ig = IntegratedGradients(model)
        attr = ig.attribute(
            x, baselines=torch.zeros_like(x), target=tgt, n_steps=steps,
            internal_batch_size=max(1, x.shape[0]) * 4,
        )  # fmt: skip  # (N, 3, H, W)
    return _minmax(attr.abs().sum(1))


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad.clamp_min(0) * (x > 0).to(grad.dtype)


@contextmanager
def guided_relus(model: nn.Module) -> Iterator[None]:
    """Swap each ``nn.ReLU``'s forward for the guided one; always restored."""
    patched = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        for m in patched:
            m.forward = _GuidedReLU.apply  # type: ignore[method-assign]
        yield
    finally:
        for m in patched:
            if "forward" in m.__dict__:
                del m.forward


def guided_backprop(model: nn.Module, images: torch.Tensor, *, targets) -> torch.Tensor:
    """Guided-backprop input gradients (N, 3, H, W) for explicit targets."""
    x = images.detach().requires_grad_(True)
    with guided_relus(model), torch.enable_grad():
        score = model(x).gather(1, targets[:, None]).sum()
        (g,) = torch.autograd.grad(score, x)
    return g


def guided_gradcam(
    model: nn.Module, images: torch.Tensor, *, targets=None, layer: nn.Module | None = None
) -> torch.Tensor:
    """Guided Grad-CAM: |guided backprop| (max over RGB) x Grad-CAM, then min-max."""
    with _eval(model):
        cam = gradcam_result(model, images, targets=targets, layer=layer)
        x = images.to(cam.maps.device)
        g = guided_backprop(model, x, targets=cam.targets)  # (N, 3, H, W)
    return _minmax(g.abs().amax(1) * cam.maps)
