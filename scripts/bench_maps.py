"""Benchmark: Grad-CAM stimuli throughput vs forward-only and pytorch-grad-cam.

On one torchvision VGG-16 (random weights), one batch and one device, in one
run, prints images/s of

1. forward only (``torch.inference_mode``) - the ceiling;
2. ours: ``workers.attribution.gradcam_result`` + heat-map + occlusion-map
   rendering, uint8 copied back to the host;
3. pytorch-grad-cam's ``GradCAM`` (maps only, no rendering) on the same layer
   (``features[29]``),

and the ratios ours / pytorch-grad-cam (target >= 3x) and ours / forward
(target >= 0.85). A figure, not a test (STYLE 13).

    uv run python scripts/bench_maps.py --batch 4 --iters 3 --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workers.attribution import gradcam_result  # noqa: E402
from workers.models import build_model, default_target_layer  # noqa: E402
from workers.render import heatmap_batch, occlusion_batch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], object], *, n_images: int, iters: int, device: torch.device) -> float:
    fn()  # warm-up (allocator, cuDNN autotune, lazy init)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return n_images * iters / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from pytorch_grad_cam import GradCAM

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(arch="vgg16", num_classes=10).to(device).eval()
    layer = default_target_layer(model)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)  # (B, 3, H, W)
    raw = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8,
                        device=device)  # fmt: skip

    def forward_only() -> None:
        with torch.inference_mode():
            model(x).argmax(1).cpu()

    def ours() -> None:
        res = gradcam_result(model, x, layer=layer)  # (B, H, W) on device
        heat = heatmap_batch(raw, res.maps, alpha=0.4)  # (B, H, W, 3) uint8
        occ = occlusion_batch(raw, res.maps, hidden=0.9)
        heat.cpu(), occ.cpu()

    cam = GradCAM(model=model, target_layers=[layer])

    def theirs() -> None:
        cam(input_tensor=x, targets=None)  # (B, H, W) numpy, predicted classes

    kw = dict(n_images=args.batch, iters=args.iters, device=device)
    r_fwd = _rate(forward_only, **kw)
    r_ours = _rate(ours, **kw)
    r_theirs = _rate(theirs, **kw)
    cam.activations_and_grads.release()
    print(f"device={device} batch={args.batch} iters={args.iters} size={args.size} "
          f"threads={torch.get_num_threads()} torch={torch.__version__}")  # fmt: skip
    print(f"forward only                    : {r_fwd:8.2f} images/s")
    print(f"ours (Grad-CAM + heat + occl.)  : {r_ours:8.2f} images/s")
    print(f"pytorch-grad-cam GradCAM (maps) : {r_theirs:8.2f} images/s")
    print(f"ours / pytorch-grad-cam         : {r_ours / r_theirs:8.2f}x   (target >= 3x)")
    print(f"ours / forward only             : {r_ours / r_fwd:8.2%}   (target >= 85%)")


if __name__ == "__main__":
    main()
