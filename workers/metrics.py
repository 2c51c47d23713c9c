"""Functionally-grounded scores for attribution maps (seeds 002-004).

All functions are batched: maps are (N, H, W) non-negative (our maps are in
[0, 1]), masks (N, H, W) bool. Undefined values (a map with zero total
relevance, an empty mask) are ``nan``; the pipeline writes them as ``null``.

- Gini sparsity (Chalasani et al.): with values sorted ascending x_1..x_n,
  G = sum_i (2i - n - 1) x_i / (n sum_i x_i); 0 = uniform, (n-1)/n = one pixel.
  An all-zero map scores 0.
- Relevance Mass Accuracy (Arras et al.): share of the total relevance inside
  the object mask.
- Relevance Rank Accuracy (Arras et al.): with K = |mask|, the share of the K
  most relevant pixels (stable order: higher value first, then raster index)
  that lie inside the mask.
- Deletion curve (Petsiuk et al.; ROAD, Rong et al. 2022: remove-and-predict
  without retraining): pixels are replaced in ``steps`` equal chunks, most
  relevant first ("morf"; or least relevant first, "lerf"), by a baseline, and
  the softmax probability of the explained class is recorded. Baselines:
  "mean" (0 after normalisation, i.e. the dataset mean colour), "blur" (a
  Gaussian-blurred copy) or "road" (ROAD's noisy linear imputation: every
  removed pixel is the weighted mean of its 8 neighbours, 1/6 direct and 1/12
  diagonal, known pixels fixed, solved here by Jacobi iterations on the
  device, then Gaussian noise added; the imputation hides the *shape* of the
  removed region, which otherwise leaks class information). The area
  (trapezoid over the removed fraction 0..1) is lower for more faithful maps
  under "morf" and higher under "lerf".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gini(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) or (H, W) -> (N,) or () Gini index of the flattened values."""
    single = maps.dim() == 2
    x = maps.reshape(1 if single else maps.shape[0], -1).double()
    n = x.shape[1]
    xs, _ = torch.sort(x, dim=1)
    i = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)
    total = xs.sum(1)
    g = ((2 * i - n - 1) * xs).sum(1) / (n * total.clamp_min(1e-300))
    g = torch.where(total > 0, g, torch.zeros_like(g)).float()
    return g[0] if single else g


def relevance_mass_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps, (N, H, W) bool masks -> (N,) share of relevance inside the mask."""
    _check(maps, masks)
    m = maps.flatten(1).double()
    inside = (m * masks.flatten(1)).sum(1)
    total = m.sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.nan).float()


def relevance_rank_accuracy(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """(N, H, W) maps, bool masks -> (N,) share of the top-|mask| pixels inside the mask."""
    _check(maps, masks)
    flat, mflat = maps.flatten(1), masks.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)  # descending, ties by index
    k = mflat.sum(1)  # (N,)
    ranked_inside = torch.gather(mflat, 1, order).float()  # (N, HW)
    pos = torch.arange(flat.shape[1], device=flat.device)[None]
    hits = (ranked_inside * (pos < k[:, None])).sum(1)
    return torch.where(k > 0, hits / k.clamp_min(1), torch.nan).float()


def _check(maps: torch.Tensor, masks: torch.Tensor) -> None:
    if maps.shape != masks.shape or maps.dim() != 3:
        raise ValueError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must be (N,H,W)")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, C, H, W) separable Gaussian blur, reflect padding."""
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, 0, 0), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.pad(x, (0, 0, r, r), mode="reflect")
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


_ROAD_KERNEL = torch.tensor([[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]])


def road_impute(
    images: torch.Tensor, removed: torch.Tensor, *, iters: int = 60, noise: float = 0.01,
    generator: torch.Generator | None = None,
) -> torch.Tensor:  # fmt: skip
    """ROAD noisy linear imputation: (N, C, H, W) images, (N, 1, H, W) bool ``removed``.

    Solves x_p = sum_q w_pq x_q / sum_q w_pq over the 8-neighbourhood for every
    removed pixel p (known pixels fixed; image borders renormalise the weights)
    by ``iters`` Jacobi sweeps started from the per-image mean of the known
    pixels, then adds N(0, ``noise``^2) to the imputed pixels only. Exact for
    small holes; for large holes the Jacobi solution is smoother than the
    direct solve but still carries no information about the removed pixels.
    """
    n, c, h, w = images.shape
    k = _ROAD_KERNEL.to(images.device, images.dtype).view(1, 1, 3, 3).repeat(c, 1, 1, 1)
    keep = (~removed).to(images.dtype)  # (N, 1, H, W)
    norm = F.conv2d(torch.ones(1, c, h, w, device=images.device, dtype=images.dtype), k,
                    padding=1, groups=c)  # fmt: skip  # (1, C, H, W) border-aware weight sums
    known_mean = (images * keep).sum((2, 3), keepdim=True) / keep.sum(
        (2, 3), keepdim=True
    ).clamp_min(1)
    x = torch.where(removed, known_mean.expand_as(images), images)
    for _ in range(iters):
        avg = F.conv2d(x, k, padding=1, groups=c) / norm
        x = torch.where(removed, avg, images)
    eps = torch.randn(images.shape, generator=generator, device="cpu").to(images.device)
    return torch.where(removed, x + noise * eps, images)


@torch.no_grad()
def deletion_curve(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    targets: torch.Tensor,
    steps: int = 10,
    baseline: str = "blur",
    order: str = "morf",
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (fractions (S+1,), probabilities (N, S+1)) for normalised images (N, 3, H, W)."""
    if order not in ("morf", "lerf"):
        raise ValueError(f"order must be 'morf' or 'lerf', got {order!r}")
    if steps < 1:
        raise ValueError("steps must be >= 1")
    dev = next(model.parameters()).device
    images, maps, targets = images.to(dev), maps.to(dev), targets.to(dev)
    n, _, h, w = images.shape
    if baseline == "mean":
        base = torch.zeros_like(images)
    elif baseline == "blur":
        base = _gaussian_blur(images, sigma=max(1.0, h / 16))
    elif baseline == "road":
        base = images  # imputed per perturbed copy below
        gen = torch.Generator().manual_seed(seed)
    else:
        raise ValueError(f"unknown baseline {baseline!r}")
    key = -maps if order == "morf" else maps
    ranking = torch.argsort(key.reshape(n, h * w), dim=1, stable=True)  # removal order
    rank = torch.empty_like(ranking)
    rank.scatter_(1, ranking, torch.arange(h * w, device=dev).expand(n, -1))
    rank = rank.view(n, 1, h, w)
    fractions = torch.linspace(0, 1, steps + 1)
    counts = [round(float(f) * h * w) for f in fractions]
    was = model.training
    model.eval()
    probs = torch.empty(n, steps + 1)
    try:
        jobs = [(i, s) for s in range(steps + 1) for i in range(n)]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            idx = torch.tensor([i for i, _ in chunk], device=dev)
            cnt = torch.tensor([counts[s] for _, s in chunk], device=dev).view(-1, 1, 1, 1)
            deleted = rank[idx] < cnt  # (B, 1, H, W)
            if baseline == "road":
                x = road_impute(images[idx], deleted, generator=gen)  # (B, 3, H, W)
            else:
                x = torch.where(deleted, base[idx], images[idx])  # (B, 3, H, W)
            p = model(x).softmax(1).gather(1, targets[idx][:, None])[:, 0]
            for (i, s), v in zip(chunk, p.cpu().tolist(), strict=True):
                probs[i, s] = v
    finally:
        model.train(was)
    return fractions, probs


def curve_area(fractions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under (N, S+1) curves over ``fractions`` -> (N,)."""
    return torch.trapezoid(values, fractions.to(values.dtype), dim=-1)
