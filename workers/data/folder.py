"""Any ImageFolder tree: ``<root>/<split>/<class>/<image>``.

``train`` is required. Missing ``val``/``test`` are carved out deterministically
(per class, seeded, see :func:`workers.data.imagenette.split_val_test`): a
missing ``test`` comes from ``val`` (``test_fraction``), a missing ``val`` from
``train`` (``val_fraction``). Class names are the sorted class folder names of
``train`` (ImageFolder order); ``val``/``test`` class folders must be a subset.
Optional masks: ``<root>/masks/<split>/<class>/<stem>.png``.
"""

from __future__ import annotations

from pathlib import Path

from workers.data.imagenette import split_val_test
from workers.data.records import DatasetIndex, ImageRecord, SkippedImage, scan_images


def index_image_folder(
    *,
    root: Path,
    val_fraction: float = 0.1,
    test_fraction: float = 0.5,
    seed: int = 0,
    probe: bool = True,
) -> DatasetIndex:
    """Index an ImageFolder tree; corrupt images are skipped and reported."""
    root = Path(root)
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"ImageFolder tree needs {root}/train/<class>/...")
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if not class_names:
        raise FileNotFoundError(f"no class folders in {root / 'train'}")
    for split in ("val", "test"):
        if (root / split).is_dir():
            extra = {p.name for p in (root / split).iterdir() if p.is_dir()} - set(class_names)
            if extra:
                raise ValueError(f"{root / split} has classes not in train: {sorted(extra)}")
    skipped: list[SkippedImage] = []
    per: dict[str, dict[int, list[Path]]] = {"train": {}, "val": {}, "test": {}}
    for label, name in enumerate(class_names):
        for split in ("train", "val", "test"):
            folder = root / split / name
            per[split][label] = scan_images(folder, skipped, probe=probe) if folder.is_dir() else []
        if not (root / "val").is_dir():
            per["train"][label], per["val"][label] = split_val_test(
                per["train"][label], test_fraction=val_fraction, seed=seed, salt=10_000 + label
            )
        if not (root / "test").is_dir():
            per["val"][label], per["test"][label] = split_val_test(
                per["val"][label], test_fraction=test_fraction, seed=seed, salt=label
            )
    splits: dict[str, list[ImageRecord]] = {}
    for split, by_label in per.items():
        recs = []
        for label, paths in by_label.items():
            for p in paths:
                src_split = p.parent.parent.name
                mask = root / "masks" / src_split / class_names[label] / f"{p.stem}.png"
                recs.append(
                    ImageRecord(
                        path=str(p),
                        label=label,
                        split=split,
                        key=f"{split}/{class_names[label]}/{p.stem}",
                        mask=str(mask) if mask.exists() else None,
                    )
                )
        splits[split] = recs
    return DatasetIndex(
        class_names=class_names, splits=splits, skipped=skipped, source=f"folder:{root}"
    )
