from __future__ import annotations

import pytest
import torch

from workers.selection import select_images


def _setup():
    keys = [f"test/c{i % 3}/{i:03d}" for i in range(30)]
    labels = torch.tensor([i % 3 for i in range(30)])
    a = labels.clone()
    b = labels.clone()
    a[[0, 3, 6]] = 1  # variant a wrong on three class-0 images
    b[[1, 4]] = 0  # variant b wrong on two class-1 images
    b[2::3] = 0  # variant b wrong on every class-2 image
    return keys, labels, {"cpr1": a, "cpr2": b}


def test_selection_takes_only_images_every_variant_gets_right() -> None:
    keys, labels, preds = _setup()
    sel = select_images(keys=keys, labels=labels, predictions=preds, per_class=3, num_classes=3,
                        seed=0)  # fmt: skip
    chosen = sel.indices
    assert all(int(p[i]) == int(labels[i]) for p in preds.values() for i in chosen)
    per_class = [sum(int(labels[i]) == c for i in chosen) for c in range(3)]
    assert per_class == [3, 3, 0]
    assert sel.shortfall == {2: 3}
    assert not {0, 3, 6, 1, 4} & set(chosen)
    assert chosen == sorted(chosen, key=lambda i: keys[i])


def test_selection_is_seeded_and_independent_of_variant_order() -> None:
    keys, labels, preds = _setup()
    kw = dict(keys=keys, labels=labels, per_class=2, num_classes=3)
    one = select_images(predictions=preds, seed=5, **kw).indices
    two = select_images(predictions=dict(reversed(list(preds.items()))), seed=5, **kw).indices
    other = [select_images(predictions=preds, seed=s, **kw).indices for s in range(6, 12)]
    assert one == two
    assert any(o != one for o in other)


def test_selection_rejects_misaligned_predictions() -> None:
    keys, labels, preds = _setup()
    preds["cpr4"] = labels[:-1]
    with pytest.raises(ValueError, match="cpr4"):
        select_images(keys=keys, labels=labels, predictions=preds, per_class=1, num_classes=3,
                      seed=0)  # fmt: skip
