"""Turn :class:`ImageRecord` lists into uint8 tensors for the model.

Datasets yield *uint8* ``(3, crop, crop)`` tensors; normalisation, augmentation
and everything else happen batched on the model's device (STYLE 9). Small sets
(the generated demo, stimulus batches) are preloaded into one tensor; large ones
(Imagenette) stream through a ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset

from workers.data.records import ImageRecord
from workers.data.transforms import Preprocessing, to_uint8_chw


class ImageDataset(Dataset):
    """Lazily decoded records -> ``(uint8 (3, crop, crop), label)``."""

    def __init__(self, records: Sequence[ImageRecord], preprocessing: Preprocessing) -> None:
        self.records = list(records)
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        rec = self.records[i]
        with Image.open(rec.path) as im:
            img = self.preprocessing.geometric(im)
        return to_uint8_chw(img), rec.label


def load_images(
    records: Sequence[ImageRecord], preprocessing: Preprocessing
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode all ``records`` -> (uint8 (N, 3, crop, crop), int64 labels (N,))."""
    ds = ImageDataset(records, preprocessing)
    c = preprocessing.crop
    images = torch.empty((len(ds), 3, c, c), dtype=torch.uint8)
    for i in range(len(ds)):
        images[i] = ds[i][0]
    labels = torch.tensor([r.label for r in records], dtype=torch.int64)
    return images, labels


def preload(records: Sequence[ImageRecord], preprocessing: Preprocessing) -> TensorDataset:
    """In-memory dataset of uint8 images + labels (for small sets)."""
    return TensorDataset(*load_images(records, preprocessing))


def load_masks(records: Sequence[ImageRecord], preprocessing: Preprocessing) -> torch.Tensor | None:
    """(N, crop, crop) bool object masks, or ``None`` unless every record has one."""
    if not records or any(r.mask is None for r in records):
        return None
    c = preprocessing.crop
    out = torch.empty((len(records), c, c), dtype=torch.bool)
    for i, r in enumerate(records):
        with Image.open(Path(str(r.mask))) as m:
            out[i] = to_uint8_chw(preprocessing.geometric_mask(m).convert("RGB"))[0] > 127
    return out
