"""Shared fixtures: tiny models and tiny image trees written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workers.models import DemoVGG, DemoVGGConfig

TINY_PLAN = DemoVGGConfig(plan=(4, "M", 8, "M", 8), pooled=2, hidden=16, dropout=0.0)


@pytest.fixture
def tiny_model() -> DemoVGG:
    torch.manual_seed(0)
    return DemoVGG(num_classes=3, config=TINY_PLAN).eval()


def write_colour_tree(root: Path, *, per_split: dict[str, int], size: int = 32) -> list[str]:
    """ImageFolder tree with two trivially separable classes (reddish vs bluish noise).

    Every image gets an object mask (its left half) under ``masks/<split>/<class>/``.
    """
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[:, : size // 2] = 255
    rng = np.random.default_rng(0)
    classes = {"blue": (40, 60, 200), "red": (200, 50, 40)}
    for split, n in per_split.items():
        for name, colour in classes.items():
            folder = root / split / name
            masks = root / "masks" / split / name
            folder.mkdir(parents=True, exist_ok=True)
            masks.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = np.clip(np.array(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
                Image.fromarray(arr.astype(np.uint8)).save(folder / f"{i:03d}.png")
                Image.fromarray(mask).save(masks / f"{i:03d}.png")
    return sorted(classes)


@pytest.fixture(scope="session")
def colour_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("colour_tree")
    write_colour_tree(root, per_split={"train": 24, "val": 6, "test": 6})
    return root
