"""Imagenette (fastai) index: ``imagenette2[-320|-160]/{train,val}/<wnid>/*.JPEG``.

Classes are in wnid order (PROTOCOL §3), so class index ``i`` is the i-th wnid
below and matches the order torchvision's ``ImageFolder`` would give. Display
names default to what the paper's raters saw ("fish", "dog" for the first two)
and can be overridden per wnid.

Test split: Imagenette ships only ``train`` and ``val`` (and its val images are
ImageNet *train* images). The paper reports a separate test accuracy without
saying how it was split, so we split ``val`` per class, deterministically by
``seed``: a ``test_fraction`` share (default 0.5, rounded down) of each class's
val images, chosen by a seeded permutation of the name-sorted list, becomes
``test``; the rest stays ``val``. The split depends only on file names and the
seed, never on directory listing order.

Unreadable or corrupt images are skipped and reported in
``DatasetIndex.skipped`` with the decoder's reason; they are never fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from workers.data.records import DatasetIndex, ImageRecord, SkippedImage, scan_images

IMAGENETTE_WNIDS: tuple[tuple[str, str], ...] = (
    ("n01440764", "tench"),
    ("n02102040", "English springer"),
    ("n02979186", "cassette player"),
    ("n03000684", "chain saw"),
    ("n03028079", "church"),
    ("n03394916", "French horn"),
    ("n03417042", "garbage truck"),
    ("n03425413", "gas pump"),
    ("n03445777", "golf ball"),
    ("n03888257", "parachute"),
)
DEFAULT_DISPLAY_NAMES: dict[str, str] = {w: n for w, n in IMAGENETTE_WNIDS} | {
    "n01440764": "fish",
    "n02102040": "dog",
}
IMAGENETTE_LAYOUTS: tuple[str, ...] = ("imagenette2", "imagenette2-320", "imagenette2-160")


def resolve_imagenette_root(root: Path) -> Path:
    """Accept the extracted folder itself or a parent holding one of the layouts."""
    root = Path(root)
    if (root / "train").is_dir():
        return root
    for name in IMAGENETTE_LAYOUTS:
        if (root / name / "train").is_dir():
            return root / name
    raise FileNotFoundError(
        f"no Imagenette tree under {root}: expected {root}/train/<wnid>/*.JPEG or one of "
        f"{', '.join(IMAGENETTE_LAYOUTS)} inside it"
    )


def split_val_test(
    items: list[Path], *, test_fraction: float, seed: int, salt: int
) -> tuple[list[Path], list[Path]]:
    """Deterministic per-class split of name-sorted ``items`` into (val, test)."""
    items = sorted(items)
    n_test = int(len(items) * test_fraction)
    perm = np.random.default_rng((seed, salt)).permutation(len(items))
    test_idx = set(perm[:n_test].tolist())
    val = [p for i, p in enumerate(items) if i not in test_idx]
    test = [p for i, p in enumerate(items) if i in test_idx]
    return val, test


def index_imagenette(
    *,
    root: Path,
    display_names: Mapping[str, str] | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    probe: bool = True,
) -> DatasetIndex:
    """Index an Imagenette tree; see the module docstring for the val/test split.

    ``display_names`` maps wnid -> name shown to raters, overriding the defaults.
    ``probe`` decodes every file once (draft mode) so corrupt images are skipped
    here rather than crashing a training epoch.
    """
    root = resolve_imagenette_root(root)
    names = DEFAULT_DISPLAY_NAMES | dict(display_names or {})
    unknown = set(display_names or {}) - set(DEFAULT_DISPLAY_NAMES)
    if unknown:
        raise ValueError(f"display_names has unknown wnids: {sorted(unknown)}")
    class_names = [names[w] for w, _ in IMAGENETTE_WNIDS]
    splits: dict[str, list[ImageRecord]] = {"train": [], "val": [], "test": []}
    skipped: list[SkippedImage] = []
    for label, (wnid, _) in enumerate(IMAGENETTE_WNIDS):
        for src in ("train", "val"):
            folder = root / src / wnid
            if not folder.is_dir():
                raise FileNotFoundError(f"Imagenette class folder missing: {folder}")
            good = scan_images(folder, skipped, probe=probe)
            parts = (
                {"train": good}
                if src == "train"
                else dict(
                    zip(
                        ("val", "test"),
                        split_val_test(good, test_fraction=test_fraction, seed=seed, salt=label),
                        strict=True,
                    )
                )
            )
            for split, paths in parts.items():
                splits[split].extend(
                    ImageRecord(
                        path=str(p), label=label, split=split, key=f"{split}/{wnid}/{p.stem}"
                    )
                    for p in paths
                )
    return DatasetIndex(
        class_names=class_names, splits=splits, skipped=skipped, source=f"imagenette:{root.name}"
    )
