"""Model zoo: a small VGG-style demo net and torchvision VGG-16 / ResNet-18/50.

Pretrained weights are torchvision's (``VGG16_Weights.IMAGENET1K_V1`` etc.),
fetched through the standard ``torch.hub`` path: ``<weights_dir or
torch.hub.get_dir()/checkpoints>/<file name from the weights URL>``. Offline,
with the file absent, :func:`build_model` raises
:class:`PretrainedWeightsUnavailable` naming the exact file and directory, so
an operator knows what to copy where.

The classification head is always replaced by a fresh ``Linear(.., num_classes)``
(after loading the 1000-class ImageNet weights), initialised under the caller's
RNG state, so the seed fixes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import torch
from torch import nn
from torchvision import models as tvm

from workers.data.transforms import Preprocessing

ARCHITECTURES: tuple[str, ...] = ("demo_vgg", "vgg16", "resnet18", "resnet50")
_TV_WEIGHTS = {
    "vgg16": tvm.VGG16_Weights.IMAGENET1K_V1,
    "resnet18": tvm.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": tvm.ResNet50_Weights.IMAGENET1K_V1,
}
DEMO_MEAN_STD = ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (e.g. offline)."""


@dataclass(frozen=True)
class DemoVGGConfig:
    """Layer plan in torchvision's VGG ``cfg`` notation: ints = 3x3 conv widths, "M" = maxpool.

    The default puts the last conv at 1/8 input resolution (8x8 for 64x64
    inputs, the same 8-pixel cell as VGG-16's 14x14 at 224 within a factor of
    2) after three pools, which gives its last ReLU a receptive field large
    enough to see whole shapes. Most conv weights sit in the two cheap 8x8 layers,
    which leaves headroom for CPR 32; ~0.31 M parameters, ~25 M MACs per image.
    """

    plan: tuple[int | str, ...] = (16, "M", 32, "M", 64, "M", 128, 128)
    pooled: int = 2
    hidden: int = 128
    dropout: float = 0.1
    batch_norm: bool = True  # conv -> BN -> ReLU (as torchvision vgg*_bn): trains in a minute


class DemoVGG(nn.Module):
    """Small VGG: ``features`` (conv3x3 [+ BN] + ReLU blocks, maxpool) -> ``avgpool`` -> ``classifier``.

    Same attribute layout as torchvision's VGG so pruning, Grad-CAM layer
    lookup and checkpoints treat both alike. ReLUs are not in-place, so the
    conv output and the ReLU output are distinct tensors.
    """

    def __init__(self, *, num_classes: int, config: DemoVGGConfig | None = None) -> None:
        super().__init__()
        cfg = config or DemoVGGConfig()
        layers: list[nn.Module] = []
        c_in = 3
        for v in cfg.plan:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers.append(nn.Conv2d(c_in, int(v), 3, padding=1))
                if cfg.batch_norm:
                    layers.append(nn.BatchNorm2d(int(v)))
                layers.append(nn.ReLU())
                c_in = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(cfg.pooled)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * cfg.pooled**2, cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (N, C, H/8, W/8)
        x = self.avgpool(x)  # (N, C, p, p)
        return self.classifier(torch.flatten(x, 1))  # (N, num_classes)


def weights_file(arch: str, *, weights_dir: Path | None = None) -> Path:
    """Where torchvision's hub cache keeps ``arch``'s ImageNet weights."""
    url = _TV_WEIGHTS[arch].url
    base = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    return base / os.path.basename(url)


def _load_imagenet_state(arch: str, *, weights_dir: Path | None, download: bool) -> dict:
    path = weights_file(arch, weights_dir=weights_dir)
    hint = (
        f"pretrained {arch} weights not available: expected file {path.name!r} in directory "
        f"{str(path.parent)!r} (torch.hub cache; source {_TV_WEIGHTS[arch].url}). "
        "Copy the file there, or run with pretrained=False."
    )
    if not path.exists() and not download:
        raise PretrainedWeightsUnavailable(hint)
    try:
        return _TV_WEIGHTS[arch].get_state_dict(progress=False, model_dir=str(path.parent))
    except (URLError, OSError, RuntimeError) as exc:
        raise PretrainedWeightsUnavailable(f"{hint} ({type(exc).__name__}: {exc})") from exc


def build_model(
    *,
    arch: str,
    num_classes: int,
    pretrained: bool = False,
    weights_dir: Path | None = None,
    download: bool = True,
    demo_config: DemoVGGConfig | None = None,
) -> nn.Module:
    """Build ``arch`` with a ``num_classes`` head, optionally from ImageNet weights.

    ``download=False`` skips the network attempt (fail fast when offline).
    The model is returned in train mode on CPU; callers move it.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; expected one of {ARCHITECTURES}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if arch == "demo_vgg":
        if pretrained:
            raise ValueError("demo_vgg has no pretrained weights; use pretrained=False")
        return DemoVGG(num_classes=num_classes, config=demo_config)
    ctor = {"vgg16": tvm.vgg16, "resnet18": tvm.resnet18, "resnet50": tvm.resnet50}[arch]
    model = ctor(weights=None)
    if pretrained:
        model.load_state_dict(
            _load_imagenet_state(arch, weights_dir=weights_dir, download=download)
        )
    if isinstance(model, tvm.VGG):
        old = model.classifier[6]
        assert isinstance(old, nn.Linear)
        model.classifier[6] = nn.Linear(old.in_features, num_classes)
    else:
        assert isinstance(model, tvm.ResNet)
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def to_device(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move ``model`` to ``device`` in the memory format that runs fastest there.

    On the CPU the weights go ``channels_last`` (NHWC): oneDNN's convolutions
    are markedly faster in that layout (measured on this project's 2-core
    Xeon: VGG-16 forward 1.3x, Grad-CAM 1.35x, ResNet-18 1.4x, demo CNN
    inference 2x and training 1.24x; Grad-CAM maps equal to within 4e-6).
    Activations follow the weights' layout, so callers pass ordinary (NCHW)
    tensors. On CUDA the layout is left as is (not measured here). Returns the
    same module; the mode (train/eval) is unchanged.
    """
    dev = torch.device(device)
    model = model.to(dev)
    if dev.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def prepare_for_inference(model: nn.Module, device: torch.device | str) -> nn.Module:
    """:func:`to_device`, in eval mode."""
    return to_device(model, device).eval()


def preprocessing_for(
    *, arch: str, image_size: int | None = None, native: bool = False
) -> Preprocessing:
    """Pre-processing matching ``arch``'s weights.

    torchvision archs use their weights' preset (resize 256, crop 224, ImageNet
    mean/std, PROTOCOL §1) whether or not weights are loaded. ``demo_vgg``
    uses ``image_size`` (default 64); ``native=True`` means the images already
    have that size (generated data) and are used as they are.
    """
    if arch == "demo_vgg":
        size = image_size or 64
        mean, std = DEMO_MEAN_STD
        return Preprocessing(
            resize=None if native else round(size * 256 / 224), crop=size, mean=mean, std=std
        )
    t = _TV_WEIGHTS[arch].transforms()
    return Preprocessing(
        resize=int(t.resize_size[0]),
        crop=int(t.crop_size[0]),
        mean=tuple(float(v) for v in t.mean),  # type: ignore[arg-type]
        std=tuple(float(v) for v in t.std),  # type: ignore[arg-type]
    )


def default_target_layer(model: nn.Module) -> nn.Module:
    """Grad-CAM layer: the post-ReLU output of the last conv (VGG), ``layer4`` (ResNet).

    For torchvision VGG-16 this is ``features[29]`` (PROTOCOL §2): hooking the
    conv ``features[28]`` instead would read the in-place ReLU'd tensor while
    its gradient is pre-ReLU.
    """
    if isinstance(model, tvm.ResNet):
        return model.layer4
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        mods = list(features)
        convs = [i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d)]
        if convs:
            i = convs[-1]
            for m in mods[i + 1 : i + 3]:  # conv -> [BN ->] ReLU
                if isinstance(m, nn.ReLU):
                    return m
            return mods[i]
    raise ValueError(f"no default Grad-CAM layer for {type(model).__name__}; pass layer=")


def module_name(model: nn.Module, module: nn.Module) -> str:
    """Dotted name of ``module`` inside ``model`` (e.g. ``"features.29"``)."""
    for name, m in model.named_modules():
        if m is module:
            return name
    raise ValueError("module is not part of model")
