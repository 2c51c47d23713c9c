from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from workers.models import (
    PretrainedWeightsUnavailable,
    build_model,
    default_target_layer,
    module_name,
    prepare_for_inference,
    preprocessing_for,
    weights_file,
)


def test_pretrained_weights_offline_error_names_file_and_directory(tmp_path: Path) -> None:
    # given an empty weights directory and no download allowed
    # when asking for pretrained VGG-16
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        build_model(arch="vgg16", num_classes=10, pretrained=True, weights_dir=tmp_path,
                    download=False)  # fmt: skip
    # then the message names the torchvision file name and the directory
    assert "vgg16-397923af.pth" in str(err.value)
    assert str(tmp_path) in str(err.value)


def test_default_weights_location_is_the_torch_hub_cache() -> None:
    expected = Path(torch.hub.get_dir()) / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_file("resnet18") == expected


def test_vgg16_head_and_gradcam_layer_is_post_relu_features_29() -> None:
    # given torchvision VGG-16 with random weights and a 10-class head
    model = build_model(arch="vgg16", num_classes=10)
    # then the head is resized and the Grad-CAM layer is the ReLU after the last conv
    assert model.classifier[6].out_features == 10
    layer = default_target_layer(model)
    assert layer is model.features[29] and isinstance(layer, nn.ReLU)
    assert isinstance(model.features[28], nn.Conv2d)
    assert module_name(model, layer) == "features.29"
    pp = preprocessing_for(arch="vgg16")
    assert (pp.resize, pp.crop) == (256, 224) and pp.mean == pytest.approx((0.485, 0.456, 0.406))


def test_resnet_heads_and_layer4() -> None:
    for arch in ("resnet18", "resnet50"):
        model = build_model(arch=arch, num_classes=3)
        assert model.fc.out_features == 3
        assert default_target_layer(model) is model.layer4


def test_demo_vgg_shapes_and_target_layer() -> None:
    model = build_model(arch="demo_vgg", num_classes=10).eval()
    out = model(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 10)
    layer = default_target_layer(model)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    idx = list(model.features).index(convs[-1])
    assert isinstance(layer, nn.ReLU) and list(model.features).index(layer) > idx


def test_unknown_architecture_and_pretrained_demo_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(arch="alexnet", num_classes=2)
    with pytest.raises(ValueError, match="no pretrained"):
        build_model(arch="demo_vgg", num_classes=2, pretrained=True)


def test_prepare_for_inference_uses_channels_last_on_cpu_and_keeps_the_maps() -> None:
    from workers.attribution import gradcam_result

    torch.manual_seed(0)
    plain = build_model(arch="demo_vgg", num_classes=3).eval()
    fast = build_model(arch="demo_vgg", num_classes=3)
    fast.load_state_dict(plain.state_dict())
    fast.train()
    assert prepare_for_inference(fast, "cpu") is fast and not fast.training
    conv = next(m for m in fast.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(5, 3, 64, 64)  # ordinary NCHW input
    a, b = gradcam_result(plain, x), gradcam_result(fast, x)
    assert torch.equal(a.targets, b.targets)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(b.maps, a.maps, rtol=0, atol=1e-4)
