"""Stimulus rendering: heat-maps and occlusion-maps (PROTOCOL §2), PNG output.

Heat-map: ``out = alpha * colour(map) + (1 - alpha) * image``, computed in
float from uint8 inputs and rounded once to uint8; no renormalisation of the
map or the result. ``colour`` is matplotlib's ``jet`` (red = most important,
1.0 -> dark red; blue = least, 0.0 -> dark blue), tabulated here as a 256-entry
lookup (its segment data interpolated at i/255) and indexed with
``round(255 * map)``; keeping our own table keeps matplotlib out of workers.

Occlusion-map: exactly ``k = round(hidden * H * W)`` pixels (Python ``round``)
with the *lowest* map values are replaced by ``fill`` (default black, as the
paper's figures show; any RGB, e.g. neutral grey (128, 128, 128), can be
passed); the rest show the image unchanged. Ties are broken deterministically
by a stable sort on (value, raster index): among equal values the earlier
pixel (row-major) is hidden first.

Batched versions run on the maps' device and return uint8 only (STYLE 9); the
single-image versions accept a PIL image or an HxWx3 uint8 array and an HxW
map in [0, 1], and return an HxWx3 uint8 array. PNGs are written without any
metadata chunks (no text, no time, no ICC profile).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# matplotlib's _jet_data (x, y0, y1) per channel.
_JET = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}
COLORMAP_NAME = "jet"


def _jet_lut() -> np.ndarray:
    x = np.linspace(0.0, 1.0, 256)
    chans = [
        np.interp(x, [p[0] for p in _JET[c]], [p[1] for p in _JET[c]])
        for c in ("red", "green", "blue")
    ]
    return (np.stack(chans, 1) * 255.0).astype(np.float32)  # (256, 3) in [0, 255]


JET_LUT: np.ndarray = _jet_lut()


def colorize(maps: torch.Tensor) -> torch.Tensor:
    """(N, H, W) in [0, 1] -> (N, H, W, 3) float32 jet colours in [0, 255]."""
    lut = torch.from_numpy(JET_LUT).to(maps.device)
    idx = torch.round(maps.clamp(0, 1) * 255).long()
    return lut[idx]


def _check_maps(maps: torch.Tensor, images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if maps.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
    if not torch.isfinite(maps).all() or maps.min() < 0 or maps.max() > 1:
        raise ValueError("maps must be finite and in [0, 1]")


def heatmap_batch(images: torch.Tensor, maps: torch.Tensor, *, alpha: float = 0.4) -> torch.Tensor:
    """uint8 (N, 3, H, W) + (N, H, W) maps -> uint8 (N, H, W, 3) blends, on the maps' device."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    images = images.to(maps.device)
    _check_maps(maps, images)
    img = images.permute(0, 2, 3, 1).float()  # (N, H, W, 3)
    out = alpha * colorize(maps) + (1.0 - alpha) * img
    return torch.round(out).clamp_(0, 255).to(torch.uint8)


def occlusion_masks(maps: torch.Tensor, *, hidden: float = 0.9) -> torch.Tensor:
    """(N, H, W) -> bool (N, H, W), True = hidden; exactly round(hidden*H*W) per image."""
    if not 0.0 <= hidden <= 1.0:
        raise ValueError(f"hidden must be in [0, 1], got {hidden}")
    n, h, w = maps.shape
    k = round(hidden * h * w)
    order = torch.argsort(maps.reshape(n, h * w), dim=1, stable=True)  # ascending; ties by index
    mask = torch.zeros(n, h * w, dtype=torch.bool, device=maps.device)
    mask.scatter_(1, order[:, :k], True)
    return mask.view(n, h, w)


def occlusion_batch(
    images: torch.Tensor, maps: torch.Tensor, *, hidden: float = 0.9,
    fill: tuple[int, int, int] = (0, 0, 0),
) -> torch.Tensor:  # fmt: skip
    """Hide the ``hidden`` share of least important pixels -> uint8 (N, H, W, 3)."""
    images = images.to(maps.device)
    _check_maps(maps, images)
    mask = occlusion_masks(maps, hidden=hidden)[..., None]  # (N, H, W, 1)
    img = images.permute(0, 2, 3, 1)  # (N, H, W, 3)
    fill_t = torch.tensor(fill, dtype=torch.uint8, device=maps.device)
    return torch.where(mask, fill_t, img).contiguous()


def _as_inputs(image, cam) -> tuple[torch.Tensor, torch.Tensor]:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"image must be a PIL image or HxWx3 uint8, got {arr.dtype} {arr.shape}")
    m = torch.as_tensor(np.asarray(cam, dtype=np.float32))
    if m.shape != arr.shape[:2]:
        raise ValueError(f"map shape {tuple(m.shape)} != image size {arr.shape[:2]}")
    img = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None]  # (1, 3, H, W)
    return img, m[None]


def heatmap(image, cam, *, alpha: float = 0.4) -> np.ndarray:
    """One heat-map: HxWx3 uint8 = alpha * jet(cam) + (1 - alpha) * image (rounded)."""
    img, m = _as_inputs(image, cam)
    return heatmap_batch(img, m, alpha=alpha)[0].numpy()


def occlusion(
    image, cam, *, hidden: float = 0.9, fill: tuple[int, int, int] = (0, 0, 0)
) -> np.ndarray:
    """One occlusion-map: HxWx3 uint8 with round(hidden*H*W) least important pixels filled."""
    img, m = _as_inputs(image, cam)
    return occlusion_batch(img, m, hidden=hidden, fill=fill)[0].numpy()


def resize_for_display(
    images: torch.Tensor, maps: torch.Tensor, *, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinearly resize uint8 (N,3,h,w) images and (N,h,w) maps to ``size`` (no-op if equal)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images, maps
    img = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)  # fmt: skip
    m = F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return torch.round(img).clamp_(0, 255).to(torch.uint8), m.clamp_(0, 1)


def is_blank(cam, *, eps: float = 1e-6) -> bool:
    """True for a degenerate map: non-finite, or (near-)constant (e.g. a collapsed model)."""
    m = torch.as_tensor(np.asarray(cam, dtype=np.float32)) if not torch.is_tensor(cam) else cam
    if m.numel() == 0 or not bool(torch.isfinite(m).all()):
        return True
    return float(m.max() - m.min()) < eps


def save_png(path: Path, array: np.ndarray) -> None:
    """Write an HxWx3 (or HxW) uint8 array as PNG with no metadata chunks, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    img = Image.fromarray(np.ascontiguousarray(array))
    img.info.clear()
    img.save(tmp, format="PNG")
    tmp.replace(path)
