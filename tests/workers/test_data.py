from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workers.data import (
    GENERATED_CLASSES,
    GeneratedDatasetConfig,
    generate_dataset,
    index_image_folder,
    index_imagenette,
)
from workers.data.imagenette import IMAGENETTE_WNIDS

TINY_GEN = GeneratedDatasetConfig(seed=3, image_size=32, train_per_class=2, val_per_class=1,
                                  test_per_class=1)  # fmt: skip


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_generated_dataset_is_deterministic_by_seed_and_has_masks(tmp_path: Path) -> None:
    # given two roots and the same config
    a = generate_dataset(root=tmp_path / "a", config=TINY_GEN)
    generate_dataset(root=tmp_path / "b", config=TINY_GEN)
    # when a third uses another seed
    generate_dataset(root=tmp_path / "c", config=GeneratedDatasetConfig(
        seed=4, image_size=32, train_per_class=2, val_per_class=1, test_per_class=1))  # fmt: skip
    # then same seed -> identical bytes, other seed -> different images
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")
    assert a.class_names == list(GENERATED_CLASSES) and len(set(GENERATED_CLASSES)) == 10
    assert a.counts() == {"train": 20, "val": 10, "test": 10}
    for rec in a.splits["test"]:
        img, mask = Image.open(rec.path), np.asarray(Image.open(str(rec.mask)))
        assert img.size == (32, 32) and mask.shape == (32, 32)
        assert set(np.unique(mask)) <= {0, 255} and (mask > 0).sum() > 20
        assert rec.key == f"test/{a.class_names[rec.label]}/{Path(rec.path).stem}"
    assert (tmp_path / "a" / "masks" / "train" / "star" / "000001.png").exists()


def test_generated_dataset_is_idempotent(tmp_path: Path) -> None:
    # given a generated tree
    generate_dataset(root=tmp_path, config=TINY_GEN)
    probe = tmp_path / "val" / "circle" / "000000.png"
    before = probe.stat().st_mtime_ns
    # when generated again with the same params
    generate_dataset(root=tmp_path, config=TINY_GEN)
    # then nothing was rewritten; but a missing file triggers regeneration
    assert probe.stat().st_mtime_ns == before
    probe.unlink()
    generate_dataset(root=tmp_path, config=TINY_GEN)
    assert probe.exists()


def _fake_imagenette(root: Path, *, train: int, val: int) -> Path:
    tree = root / "imagenette2-160"
    rng = np.random.default_rng(0)
    for wnid, _ in IMAGENETTE_WNIDS:
        for split, n in (("train", train), ("val", val)):
            d = tree / split / wnid
            d.mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{wnid}_{i}.JPEG", format="JPEG")
    return tree


def test_imagenette_loader_classes_split_and_corrupt_jpeg(tmp_path: Path) -> None:
    # given a fake imagenette2-160 tree with a truncated JPEG and a garbage file
    tree = _fake_imagenette(tmp_path, train=2, val=4)
    good = tree / "train" / "n01440764" / "n01440764_0.JPEG"
    corrupt = tree / "train" / "n01440764" / "n01440764_1.JPEG"
    corrupt.write_bytes(good.read_bytes()[:200])
    garbage = tree / "val" / "n03888257" / "broken.JPEG"
    garbage.write_bytes(b"not a jpeg at all")
    # when indexed from the parent folder with one display name overridden
    idx = index_imagenette(root=tmp_path, display_names={"n03888257": "chute"}, seed=1)
    # then classes follow wnid order with the raters' names, corrupt files are reported
    assert idx.class_names[:3] == ["fish", "dog", "cassette player"]
    assert idx.class_names[-1] == "chute"
    assert {s.path for s in idx.skipped} == {str(corrupt), str(garbage)}
    assert all(s.reason for s in idx.skipped)
    assert idx.counts() == {"train": 19, "val": 20, "test": 20}
    assert all(
        r.key.startswith(("val/n", "test/n")) for r in idx.splits["val"] + idx.splits["test"]
    )
    # and the val/test split is deterministic and disjoint
    again = index_imagenette(root=tree, display_names={"n03888257": "chute"}, seed=1)
    assert [r.path for r in again.splits["test"]] == [r.path for r in idx.splits["test"]]
    assert not {r.path for r in idx.splits["val"]} & {r.path for r in idx.splits["test"]}


def test_imagenette_loader_rejects_missing_tree(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="imagenette2-320"):
        index_imagenette(root=tmp_path)


def test_image_folder_splits_missing_test_and_skips_corrupt(tmp_path: Path) -> None:
    # given train/val only, with one unreadable file
    for split, n in (("train", 3), ("val", 4)):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(d / f"{i}.png")
    (tmp_path / "train" / "a" / "bad.png").write_bytes(b"\x89PNG broken")
    # when indexed
    idx = index_image_folder(root=tmp_path, seed=0)
    # then test is carved out of val, and the bad file is reported
    assert idx.class_names == ["a", "b"]
    assert idx.counts() == {"train": 6, "val": 4, "test": 4}
    assert [s.path for s in idx.skipped] == [str(tmp_path / "train" / "a" / "bad.png")]
