"""Pre-processing as data: geometric part (PIL) and normalisation (tensor).

The split matters for stimuli: raters see the *geometrically* pre-processed
image (resized, centre-cropped, not normalised) with the map over it, so the
pixels they see are exactly the pixels the model saw. A :class:`Preprocessing`
is also recorded verbatim in each stimulus's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    """Resize shorter side to ``resize`` (``None``: keep), centre-crop ``crop``, normalise.

    For ImageNet weights this is torchvision's ``ImageClassification``
    preset (resize 256 bilinear, crop 224, ImageNet mean/std).
    """

    resize: int | None
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def describe(self) -> str:
        return (
            f"resize={self.resize} bilinear, center_crop={self.crop}, "
            f"mean={list(self.mean)}, std={list(self.std)}"
        )

    def _fit(self, img: Image.Image, resample: Image.Resampling) -> Image.Image:
        """Resize the short side to ``resize`` (if set), then centre-crop ``crop``."""
        if self.resize is not None:
            w, h = img.size
            s = self.resize / min(w, h)
            img = img.resize((max(self.crop, round(w * s)), max(self.crop, round(h * s))), resample)
        w, h = img.size
        if (w, h) == (self.crop, self.crop):
            return img
        left, top = (w - self.crop) // 2, (h - self.crop) // 2
        if left < 0 or top < 0:
            return img.resize((self.crop, self.crop), resample)
        return img.crop((left, top, left + self.crop, top + self.crop))

    def geometric(self, img: Image.Image) -> Image.Image:
        """RGB PIL image -> RGB PIL image of ``crop`` x ``crop`` (what the model sees)."""
        return self._fit(img.convert("RGB"), Image.Resampling.BILINEAR)

    def geometric_mask(self, mask: Image.Image) -> Image.Image:
        """Same geometry for a binary mask (nearest neighbour keeps it binary)."""
        return self._fit(mask.convert("L"), Image.Resampling.NEAREST)

    def normalize(self, images_u8: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 (any device) -> (N, 3, H, W) float32 normalised."""
        x = images_u8.float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


def to_uint8_chw(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) uint8 tensor."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)
