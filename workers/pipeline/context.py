"""Per-run context shared by the step implementations: device, data, pre-processing."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from workers.data import (
    DatasetIndex,
    ImageDataset,
    ImageRecord,
    Preprocessing,
    load_images,
    preload,
)
from workers.models import prepare_for_inference, preprocessing_for
from workers.pipeline.config import PipelineConfig
from workers.pruning import load_checkpoint

PRELOAD_LIMIT_BYTES = 512 * 1024**2  # splits smaller than this are decoded once into memory


@dataclass
class RunContext:
    cfg: PipelineConfig
    workdir: Path
    _datasets: dict[str, Dataset] = field(default_factory=dict, repr=False)

    @cached_property
    def device(self) -> torch.device:
        if self.cfg.device:
            return torch.device(self.cfg.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def index_path(self) -> Path:
        return self.workdir / "dataset_index.json"

    @cached_property
    def index(self) -> DatasetIndex:
        return DatasetIndex.load(self.index_path)

    @cached_property
    def preprocessing(self) -> Preprocessing:
        return preprocessing_for(
            arch=self.cfg.architecture,
            image_size=self.cfg.image_size,
            native=self.cfg.dataset == "generated",
        )

    @property
    def display_size(self) -> int:
        return self.cfg.display_size or max(224, self.preprocessing.crop)

    def dataset(self, split: str) -> Dataset:
        """uint8 dataset of ``split``; small splits are decoded once per step and cached."""
        if split not in self._datasets:
            recs = self.index.splits[split]
            c = self.preprocessing.crop
            if len(recs) * 3 * c * c <= PRELOAD_LIMIT_BYTES:
                self._datasets[split] = preload(recs, self.preprocessing)
            else:
                self._datasets[split] = ImageDataset(recs, self.preprocessing)
        return self._datasets[split]

    def images(self, records: list[ImageRecord]) -> tuple[torch.Tensor, torch.Tensor]:
        return load_images(records, self.preprocessing)

    def checkpoint_path(self, label: str) -> Path:
        return self.workdir / "variants" / f"{label}.pt"

    def load_variant(self, label: str) -> nn.Module:
        """The variant's checkpoint, ready for inference on this run's device."""
        model, _ = load_checkpoint(self.checkpoint_path(label), map_location=self.device)
        return prepare_for_inference(model, self.device)
