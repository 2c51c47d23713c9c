"""Benchmark: Grad-CAM stimuli throughput vs forward-only and pytorch-grad-cam.

On one torchvision VGG-16 (random weights), one batch and one device, in one
run, prints images/s of

1. forward only (``torch.inference_mode``) on the model as the pipeline runs
   it (:func:`workers.models.prepare_for_inference`: eval, and channels-last
   weights on the CPU) - the ceiling for the 85 % target - and, for
   reference, on the plain model;
2. ours: ``workers.attribution.gradcam_result`` + heat-map + occlusion-map
   rendering, uint8 copied back to the host, on the prepared model (what the
   ``attribute`` step does per batch);
3. pytorch-grad-cam's ``GradCAM`` (maps only, no rendering) on the same layer
   (``features[29]``), called as its README shows on the plain model - the
   peer for the 3x target - and, for reference, on our prepared model.

The methods run interleaved for ``--rounds`` rounds so that a noisy machine
slows them alike; each figure is the median over rounds. Prints the ratios
ours / pytorch-grad-cam (target >= 3x) and ours / forward (target >= 0.85).
A figure, not a test (STYLE 13).

    uv run python scripts/bench_maps.py --batch 4 --rounds 5 --device cpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workers.attribution import gradcam_result  # noqa: E402
from workers.models import build_model, default_target_layer, prepare_for_inference  # noqa: E402
from workers.render import heatmap_batch, occlusion_batch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Method:
    """A timed call plus untimed set-up and tear-down around each round."""

    def __init__(self, run: Callable[[], object], setup=None, teardown=None) -> None:
        self.run, self.setup, self.teardown = run, setup, teardown

    def rate(self, *, n_images: int, iters: int, device: torch.device) -> float:
        if self.setup:
            self.setup()
        try:
            self.run()  # untimed warm call: allocator, oneDNN primitives, cuDNN autotune
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                self.run()
            _sync(device)
            return n_images * iters / (time.perf_counter() - t0)
        finally:
            if self.teardown:
                self.teardown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=2, help="calls per method per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from pytorch_grad_cam import GradCAM

    device = torch.device(args.device)
    torch.manual_seed(0)
    plain = build_model(arch="vgg16", num_classes=10).to(device).eval()
    prepared = build_model(arch="vgg16", num_classes=10)
    prepared.load_state_dict(plain.state_dict())
    prepared = prepare_for_inference(prepared, device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)  # (B, 3, H, W)
    raw = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8,
                        device=device)  # fmt: skip

    def forward_only(model: torch.nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                model(x).argmax(1).cpu()

        return run

    def ours() -> None:
        res = gradcam_result(prepared, x, layer=default_target_layer(prepared))  # (B, H, W)
        heat = heatmap_batch(raw, res.maps, alpha=0.4)  # (B, H, W, 3) uint8
        occ = occlusion_batch(raw, res.maps, hidden=0.9)
        heat.cpu(), occ.cpu()

    def theirs(model: torch.nn.Module) -> Method:
        # One GradCAM object reused across the round's calls (its fastest use);
        # its hooks are released between rounds so they never touch the others.
        cams: list = []

        def setup() -> None:
            cams.append(GradCAM(model=model, target_layers=[default_target_layer(model)]))

        def run() -> None:
            cams[-1](input_tensor=x, targets=None)  # (B, H, W) numpy, predicted classes

        def teardown() -> None:
            cams.pop().activations_and_grads.release()

        return Method(run, setup, teardown)

    methods = {
        "forward": Method(forward_only(prepared)),
        "forward_plain": Method(forward_only(plain)),
        "ours": Method(ours),
        "pgc": theirs(plain),
        "pgc_prepared": theirs(prepared),
    }
    rates: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            rates[name].append(fn.rate(n_images=args.batch, iters=args.iters, device=device))
    r = {k: statistics.median(v) for k, v in rates.items()}
    print(f"device={device} batch={args.batch} iters={args.iters} rounds={args.rounds} "
          f"size={args.size} threads={torch.get_num_threads()} torch={torch.__version__}")  # fmt: skip
    print("images/s, median over rounds (min-max):")
    labels = {
        "forward": "forward only (prepared model)",
        "forward_plain": "forward only (plain model)",
        "ours": "ours: Grad-CAM + heat + occlusion",
        "pgc": "pytorch-grad-cam GradCAM (plain)",
        "pgc_prepared": "pytorch-grad-cam (prepared model)",
    }
    for k, label in labels.items():
        print(f"  {label:36s}: {r[k]:8.2f}   ({min(rates[k]):.2f}-{max(rates[k]):.2f})")
    print(f"ours / pytorch-grad-cam            : {r['ours'] / r['pgc']:8.2f}x   (target >= 3x)")
    print(f"ours / forward only                : {r['ours'] / r['forward']:8.2%}   (target >= 85%)")
    print(
        f"ours / pytorch-grad-cam on prepared: {r['ours'] / r['pgc_prepared']:8.2f}x   (reference)"
    )


if __name__ == "__main__":
    main()
