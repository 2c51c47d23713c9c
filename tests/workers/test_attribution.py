from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workers.attribution import ATTRIBUTION_METHODS, gradcam, gradcam_result, guided_backprop
from workers.attribution.gradients import guided_relus
from workers.models import build_model, default_target_layer, module_name


def _reference_gradcam(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, layer: nn.Module):
    """Textbook Grad-CAM with plain hooks and loss.backward (independent of our code)."""
    acts: list[torch.Tensor] = []

    def keep(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    h = layer.register_forward_hook(keep)
    try:
        logits = model(x.clone().requires_grad_(True))
        logits.gather(1, targets[:, None]).sum().backward()
    finally:
        h.remove()
    a = acts[0]
    weights = a.grad.mean((2, 3), keepdim=True)
    cam = torch.relu((weights * a).sum(1)).detach()
    up = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = up.flatten(1).min(1).values[:, None, None]
    hi = up.flatten(1).max(1).values[:, None, None]
    return torch.nan_to_num((up - lo) / (hi - lo), nan=0.0)  # constant map -> zeros


def test_gradcam_matches_a_manual_hook_reference_and_touches_no_weight_grads(tiny_model) -> None:
    # given a tiny CNN and a batch
    torch.manual_seed(1)
    x = torch.randn(4, 3, 32, 32).repeat_interleave(3, 0)  # every image with every class
    targets = torch.arange(3).repeat(4)
    layer = default_target_layer(tiny_model)
    # when our Grad-CAM runs
    res = gradcam_result(tiny_model, x, targets=targets)
    # then it equals the reference, is in [0, 1] per image, and no .grad was written
    ref = _reference_gradcam(tiny_model, x, targets, layer)
    tiny_model.zero_grad(set_to_none=True)
    res2 = gradcam(tiny_model, x, targets=targets)
    assert torch.allclose(res.maps, ref, atol=1e-5)
    assert torch.equal(res2, res.maps)
    assert all(p.grad is None for p in tiny_model.parameters())
    assert res.maps.shape == (12, 32, 32)
    live = ref.flatten(1).max(1).values > 0
    assert live.sum() >= 2  # the comparison is not vacuous
    assert torch.allclose(res.maps.flatten(1).max(1).values[live], torch.ones(int(live.sum())))
    assert torch.allclose(res.maps.flatten(1).min(1).values, torch.zeros(12))
    assert res.layer == module_name(tiny_model, layer) == "features.10"


def test_gradcam_agrees_with_pytorch_grad_cam(tiny_model) -> None:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    # given the same model, layer and targets
    torch.manual_seed(2)
    x = torch.randn(4, 3, 32, 32).repeat_interleave(3, 0)
    targets = list(range(3)) * 4
    layer = default_target_layer(tiny_model)
    # when both implementations run
    ours = gradcam(tiny_model, x, targets=targets).numpy()
    with GradCAM(model=tiny_model, target_layers=[layer]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])
    # then the maps agree up to the order of resize and normalisation
    live = [(a, b) for a, b in zip(ours, theirs, strict=True) if a.max() > 0 and b.max() > 0]
    assert len(live) >= 2
    for a, b in live:
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
    assert all((a.max() > 0) == (b.max() > 0) for a, b in zip(ours, theirs, strict=True))


def test_default_targets_are_the_predicted_classes(tiny_model) -> None:
    x = torch.randn(3, 3, 32, 32)
    res = gradcam_result(tiny_model, x)
    assert torch.equal(res.targets, tiny_model(x).argmax(1))


@pytest.mark.parametrize("name", sorted(ATTRIBUTION_METHODS))
def test_every_method_has_the_common_contract(tiny_model, name: str) -> None:
    fn = ATTRIBUTION_METHODS[name]
    x = torch.randn(2, 3, 32, 32)
    # when called with valid targets -> (N, H, W) in [0, 1]
    maps = fn(tiny_model, x, targets=[0, 2], layer=None)
    assert maps.shape == (2, 32, 32)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1
    # and targets of the wrong length are refused
    with pytest.raises(ValueError, match="targets has 3 entries but the batch has 2"):
        fn(tiny_model, x, targets=[0, 1, 2])


def test_hooks_are_released_when_the_forward_raises() -> None:
    # given a model that fails after the Grad-CAM layer
    class Boom(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    torch.manual_seed(0)
    model = nn.Sequential()
    model.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    model.boom = Boom()
    layer = model.features[1]
    # when Grad-CAM runs and the forward raises
    with pytest.raises(RuntimeError, match="boom"):
        gradcam(model, torch.randn(1, 3, 8, 8), layer=layer)
    # then no hook is left behind
    assert not layer._forward_hooks


def test_hooks_are_released_when_targets_are_out_of_range(tiny_model) -> None:
    layer = default_target_layer(tiny_model)
    with pytest.raises(ValueError, match="class indices"):
        gradcam(tiny_model, torch.randn(1, 3, 32, 32), targets=[7])
    assert not layer._forward_hooks and not layer._forward_pre_hooks


def test_vgg16_gradcam_records_features_29() -> None:
    torch.manual_seed(0)
    model = build_model(arch="vgg16", num_classes=10).eval()
    res = gradcam_result(model, torch.randn(1, 3, 64, 64))
    assert res.layer == "features.29" and res.maps.shape == (1, 64, 64)


def test_guided_relus_are_restored_and_gradients_non_negative_through_relus(tiny_model) -> None:
    x = torch.randn(2, 3, 32, 32)
    g = guided_backprop(tiny_model, x, targets=torch.tensor([0, 1]))
    assert g.shape == x.shape
    with pytest.raises(RuntimeError), guided_relus(tiny_model):
        raise RuntimeError("inside")
    assert all("forward" not in m.__dict__ for m in tiny_model.modules() if isinstance(m, nn.ReLU))


def test_a_collapsed_model_gives_blank_maps(tiny_model) -> None:
    from workers.render import is_blank

    # given a model whose convolutions were all zeroed (e.g. pruned to death)
    with torch.no_grad():
        for m in tiny_model.modules():
            if isinstance(m, nn.Conv2d | nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
    # when explained
    maps = gradcam(tiny_model, torch.randn(2, 3, 32, 32))
    # then the maps are all zero and flagged as blank
    assert torch.equal(maps, torch.zeros_like(maps))
    assert all(is_blank(m) for m in maps)
