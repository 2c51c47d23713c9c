from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.workers.conftest import TINY_PLAN
from workers.models import DemoVGG, DemoVGGConfig
from workers.pruning import (
    STRUCTURED_CPR_RTOL,
    clone_model,
    conv_cpr,
    layer_report,
    load_checkpoint,
    prune_to_cpr,
    save_checkpoint,
    scope_cpr,
)
from workers.pruning.schedules import rewind_weights

# Wide enough that CPR 32 leaves a few weights per layer; still tiny.
SMALL = DemoVGGConfig(plan=(8, "M", 16, "M", 32, 32), pooled=2, hidden=32, dropout=0.0)


def _model(config: DemoVGGConfig = SMALL) -> DemoVGG:
    torch.manual_seed(0)
    return DemoVGG(num_classes=4, config=config).eval()


def _measured_cpr_after_forward(model: nn.Module, types: tuple[type, ...]) -> float:
    """Independent count: read ``.weight`` only after a forward has refreshed it."""
    model(torch.randn(1, 3, 32, 32))
    mods = [m for m in model.modules() if isinstance(m, types)]
    total = sum(m.weight.numel() for m in mods)
    left = sum(int(torch.count_nonzero(m.weight)) for m in mods)
    return total / left


@pytest.mark.parametrize("method", ["global", "layerwise"])
@pytest.mark.parametrize("scope", ["conv", "all"])
def test_unstructured_pruning_reaches_each_cpr_within_a_tenth_of_a_percent(method, scope) -> None:
    # given a dense model
    model = _model()
    types = (nn.Conv2d,) if scope == "conv" else (nn.Conv2d, nn.Linear)
    total = sum(m.weight.numel() for m in model.modules() if isinstance(m, types))
    for cpr in (2, 4, 8, 16, 32):
        # when pruned iteratively to the next CPR
        prune_to_cpr(model, cpr, scope=scope, method=method)
        # then the CPR counted after a forward pass is exact to ±0.1 %
        measured = _measured_cpr_after_forward(model, types)
        assert measured == pytest.approx(cpr, rel=1e-3)
        left = sum(
            int(torch.count_nonzero(m.weight)) for m in model.modules() if isinstance(m, types)
        )
        assert left == round(total / cpr)  # step a -> b removed exactly 1 - a/b of the rest
        assert scope_cpr(model, scope) == pytest.approx(measured)


def test_layerwise_pruning_gives_every_layer_the_same_sparsity() -> None:
    model = _model()
    prune_to_cpr(model, 4, method="layerwise")
    rows = [r for r in layer_report(model, "conv") if r.in_scope]
    assert all(r.sparsity == pytest.approx(0.75, abs=2 / r.total) for r in rows)


def test_conv_scope_leaves_linear_layers_and_biases_untouched() -> None:
    # given a model and a copy of every tensor that is out of scope
    model = _model()
    before = {
        k: v.clone() for k, v in model.state_dict().items() if "features" not in k or "bias" in k
    }
    # when conv weights are pruned hard
    prune_to_cpr(model, 16, scope="conv", method="global")
    model(torch.randn(1, 3, 32, 32))
    # then linear layers are not reparametrised and all out-of-scope tensors are unchanged
    for m in model.modules():
        if isinstance(m, nn.Linear):
            assert not hasattr(m, "weight_mask")
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    report = {r.name: r for r in layer_report(model, "conv")}
    assert report["classifier.0"].sparsity == 0 and not report["classifier.0"].in_scope


def test_pruning_backwards_is_refused() -> None:
    model = _model()
    prune_to_cpr(model, 8)
    with pytest.raises(ValueError, match="cannot prune back"):
        prune_to_cpr(model, 4)


def test_structured_pruning_removes_channels_within_documented_tolerance() -> None:
    # given the tiny net
    model = _model()
    dense_channels = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    example = torch.zeros(1, 3, 32, 32)
    for cpr in (2, 4):
        # when filter-pruned
        prune_to_cpr(model, cpr, method="structured", example_input=example)
        # then channels are really gone and conv weights dropped by ~cpr
        assert conv_cpr(model) == pytest.approx(cpr, rel=STRUCTURED_CPR_RTOL)
    channels = [m.out_channels for m in model.features if isinstance(m, nn.Conv2d)]
    assert sum(channels) < sum(dense_channels)
    assert all(int(torch.count_nonzero(m.weight)) == m.weight.numel()
               for m in model.modules() if isinstance(m, nn.Conv2d))  # fmt: skip
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)  # head keeps num_classes


def test_masks_survive_optimizer_steps_and_stale_weight_is_not_counted() -> None:
    # given a pruned model
    model = _model()
    prune_to_cpr(model, 8)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    # when it is trained for a step (``.weight`` is stale until the next forward)
    loss = model(torch.randn(4, 3, 32, 32)).sum()
    loss.backward()
    opt.step()
    # then the CPR is unchanged both from masks and after a forward pass
    assert conv_cpr(model) == pytest.approx(8, rel=1e-3)
    assert _measured_cpr_after_forward(model, (nn.Conv2d,)) == pytest.approx(8, rel=1e-3)


@pytest.mark.parametrize("method", ["global", "structured"])
def test_checkpoint_round_trip_into_a_fresh_model(tmp_path: Path, method: str) -> None:
    # given a pruned model
    model = _model()
    prune_to_cpr(model, 4, method=method, example_input=torch.zeros(1, 3, 32, 32))
    x = torch.randn(3, 3, 32, 32)
    expected = model(x)
    # when saved and loaded into a freshly built model
    path = tmp_path / "m.pt"
    sha = save_checkpoint(model, path, arch="demo_vgg", num_classes=4, demo_config=SMALL)
    loaded, payload = load_checkpoint(path)
    # then outputs, CPR and hash agree, before any forward refreshes .weight
    assert conv_cpr(loaded) == pytest.approx(conv_cpr(model))
    assert torch.allclose(loaded.eval()(x), expected, atol=1e-6)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert save_checkpoint(model, tmp_path / "again.pt", arch="demo_vgg", num_classes=4,
                           demo_config=SMALL) == sha  # fmt: skip
    if method == "global":
        assert payload["reparametrised"] and hasattr(loaded.features[0], "weight_mask")
        # and pruning continues from the loaded masks
        prune_to_cpr(loaded, 8)
        assert conv_cpr(loaded) == pytest.approx(8, rel=1e-3)


def test_clone_model_copies_a_reparametrised_model() -> None:
    # given a pruned (reparametrised) model
    model = _model(TINY_PLAN)
    prune_to_cpr(model, 2)
    # when cloned
    twin = clone_model(model)
    # then the clone is independent and equal, and the original still works
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(twin(x), model(x))
    with torch.no_grad():
        twin.features[0].weight_orig.add_(1.0)
    assert not torch.equal(twin(x), model(x))
    assert conv_cpr(twin) == pytest.approx(conv_cpr(model))


def test_lottery_rewind_restores_surviving_weights_and_keeps_masks() -> None:
    # given the initial weights and a model trained away from them, then pruned
    model = _model(TINY_PLAN)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    prune_to_cpr(model, 4)
    mask = model.features[0].weight_mask.clone()
    # when rewound
    rewind_weights(model, init)
    model(torch.zeros(1, 3, 32, 32))
    # then surviving weights equal their initial values, pruned ones stay zero
    assert torch.equal(model.features[0].weight_mask, mask)
    assert torch.equal(model.features[0].weight, init["features.0.weight"] * mask)
    assert conv_cpr(model) == pytest.approx(4, rel=1e-3)


def test_vgg16_conv_counts_match_the_protocol() -> None:
    # given torchvision VGG-16 (PROTOCOL §1: 14,710,464 conv weights)
    from workers.models import build_model

    torch.manual_seed(0)
    model = build_model(arch="vgg16", num_classes=10)
    assert sum(r.total for r in layer_report(model, "conv") if r.kind == "conv") == 14_710_464
    # when pruned globally to CPR 32 over the conv layers
    prune_to_cpr(model, 32)
    # then exactly 459,702 conv weights are left and the classifier is not pruned
    rows = layer_report(model, "conv")
    assert sum(r.remaining for r in rows if r.kind == "conv") == 459_702
    assert not any(hasattr(m, "weight_mask") for m in model.classifier)
