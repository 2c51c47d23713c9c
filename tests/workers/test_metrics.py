from __future__ import annotations

import pytest
import torch
from torch import nn

from workers.metrics import (
    curve_area,
    deletion_curve,
    gini,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)


def test_gini_on_hand_computable_maps() -> None:
    assert float(gini(torch.ones(2, 2))) == pytest.approx(0.0)
    assert float(gini(torch.tensor([[0.0, 0.0], [0.0, 1.0]]))) == pytest.approx(0.75)
    assert float(gini(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))) == pytest.approx(0.5)
    assert float(gini(torch.zeros(3, 3))) == 0.0
    batch = torch.stack([torch.ones(2, 2), torch.tensor([[0.0, 0.0], [0.0, 1.0]])])
    assert gini(batch).tolist() == pytest.approx([0.0, 0.75])


def test_relevance_mass_and_rank_accuracy_on_hand_computable_maps() -> None:
    maps = torch.tensor([[[0.9, 0.8], [0.1, 0.0]]])
    mask = torch.tensor([[[True, False], [True, False]]])
    # mass: (0.9 + 0.1) / 1.8; rank: top-2 = {0.9, 0.8}, one of them inside
    assert float(relevance_mass_accuracy(maps, mask)) == pytest.approx(1.0 / 1.8)
    assert float(relevance_rank_accuracy(maps, mask)) == pytest.approx(0.5)
    empty = torch.zeros_like(mask)
    assert torch.isnan(relevance_rank_accuracy(maps, empty)).all()
    assert torch.isnan(relevance_mass_accuracy(torch.zeros_like(maps), mask)).all()


class _MeanBrightness(nn.Module):
    """Two-class model whose class-1 logit is 10x the mean of channel 0."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, 0].mean((1, 2)) * 10
        return torch.stack([torch.zeros_like(s), s], 1) + self.dummy


def test_deletion_curve_removes_most_relevant_pixels_first() -> None:
    # given an image that is bright on the left half only, and a map pointing there
    x = torch.zeros(1, 3, 4, 4)
    x[:, :, :, :2] = 1.0
    good = torch.zeros(1, 4, 4)
    good[:, :, :2] = 1.0
    bad = 1 - good
    model = _MeanBrightness()
    t = torch.tensor([1])
    # when deleting towards the mean baseline (0)
    fr, p_good = deletion_curve(model, x, good, targets=t, steps=4, baseline="mean")
    _, p_bad = deletion_curve(model, x, bad, targets=t, steps=4, baseline="mean")
    # then the faithful map drops the class probability faster (smaller area)
    assert fr.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert p_good[0, 0] == pytest.approx(p_bad[0, 0]) and p_good[0, -1] == pytest.approx(0.5)
    assert float(curve_area(fr, p_good)[0]) < float(curve_area(fr, p_bad)[0])
    # and the first half of the good curve falls to the baseline's probability
    assert p_good[0, 2] == pytest.approx(0.5)


def test_curve_area_is_the_trapezoid_rule() -> None:
    fr = torch.tensor([0.0, 0.5, 1.0])
    assert float(curve_area(fr, torch.tensor([[1.0, 0.5, 0.0]]))[0]) == pytest.approx(0.5)


def test_road_imputation_keeps_known_pixels_and_fills_holes_linearly() -> None:
    from workers.metrics import road_impute

    # given a linear ramp with a hole in the middle
    ramp = torch.linspace(0, 1, 12).view(1, 1, 1, 12).expand(1, 3, 12, 12).contiguous()
    removed = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
    removed[..., 4:8, 4:8] = True
    # when imputed without noise
    out = road_impute(ramp, removed, iters=300, noise=0.0)
    # then known pixels are untouched and the hole is re-filled with the ramp
    assert torch.equal(out[~removed.expand_as(out)], ramp[~removed.expand_as(ramp)])
    assert torch.allclose(out, ramp, atol=1e-3)
    # and with noise only the imputed pixels change, deterministically by generator
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    n1 = road_impute(ramp, removed, noise=0.1, generator=g1)
    n2 = road_impute(ramp, removed, noise=0.1, generator=g2)
    assert torch.equal(n1, n2) and not torch.allclose(n1, out, atol=1e-3)


def test_road_deletion_orders_faithful_maps_first() -> None:
    # given the bright-left image: MoRF with the good map drops fastest, LeRF slowest
    x = torch.zeros(1, 3, 8, 8)
    x[:, :, :, :4] = 1.0
    good = torch.zeros(1, 8, 8)
    good[:, :, :4] = 1.0
    model, t = _MeanBrightness(), torch.tensor([1])
    fr, morf = deletion_curve(model, x, good, targets=t, steps=4, baseline="road")
    _, lerf = deletion_curve(model, x, good, targets=t, steps=4, baseline="road", order="lerf")
    assert float(curve_area(fr, morf)[0]) < float(curve_area(fr, lerf)[0])
    with pytest.raises(ValueError, match="order"):
        deletion_curve(model, x, good, targets=t, order="random")
