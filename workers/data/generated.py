"""Procedurally drawn demo dataset: 10 shapes on cluttered backgrounds.

Why: the real study needs Imagenette and ImageNet weights, which a laptop or CI
runner may not have. This set exercises the whole pipeline offline and, unlike
Imagenette, comes with a per-object binary mask so mask-based metrics (RMA,
RRA) are defined.

Design: the class is the *shape* only. Colour (from one palette shared by all
classes), fill texture (solid or striped), size, position, aspect and rotation
are nuisance variables drawn independently of the class, so no single colour or
texture statistic identifies a class. Rotations are limited where a rotation
would turn one class into another (a square rotated by 45 degrees is a diamond).

Determinism: every image is drawn from ``numpy.random.default_rng((seed,
split_id, class_id, i))``, so an image depends only on its own coordinates and
the seed, never on generation order. Drawing happens at ``SUPERSAMPLE`` times
the target size and is downsampled with a Lanczos filter (anti-aliasing); the
mask is downsampled the same way and thresholded at 50 %.

Layout written (ImageFolder-style)::

    <root>/{train,val,test}/<class>/<id>.png
    <root>/masks/{train,val,test}/<class>/<id>.png     (L mode, 0 or 255)
    <root>/generated_meta.json                          (params; idempotency)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from workers.data.records import SPLITS, DatasetIndex, ImageRecord

GENERATED_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "crescent",
    "diamond",
    "hexagon",
    "arrow",
)
GENERATOR_VERSION = 2
SUPERSAMPLE = 2
META_FILE = "generated_meta.json"

# Saturated object colours, shared by all classes (colour is not the label).
_PALETTE: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40),
    (40, 160, 60),
    (40, 80, 220),
    (240, 200, 30),
    (200, 60, 200),
    (30, 190, 200),
    (245, 130, 30),
    (250, 250, 250),
)


@dataclass(frozen=True)
class GeneratedDatasetConfig:
    """Size knobs for the generated set; defaults train demo_vgg in < 1 min on 2 cores."""

    seed: int = 0
    image_size: int = 64
    train_per_class: int = 300
    val_per_class: int = 30
    test_per_class: int = 30

    def per_class(self, split: str) -> int:
        return {
            "train": self.train_per_class,
            "val": self.val_per_class,
            "test": self.test_per_class,
        }[split]


def _regular_polygon(
    cx: float, cy: float, r: float, n: int, rot: float
) -> list[tuple[float, float]]:
    return [
        (cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n))
        for k in range(n)
    ]


def _transform(
    pts: list[tuple[float, float]], cx: float, cy: float, r: float, rot: float
) -> list[tuple[float, float]]:
    """Scale unit-square-ish points by ``r``, rotate by ``rot`` and move to (cx, cy)."""
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def _draw_shape(
    draw: ImageDraw.ImageDraw, name: str, cx: float, cy: float, r: float, rng: np.random.Generator
) -> None:
    """Draw class ``name`` with fill 255 on an ``L`` image (the object mask)."""
    deg = math.pi / 180
    if name == "circle":
        a = rng.uniform(0.9, 1.1)
        draw.ellipse([cx - r * a, cy - r / a, cx + r * a, cy + r / a], fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = r * rng.uniform(0.5, 0.62)
        draw.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif name == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ang = rng.uniform(0, 2 * math.pi)
        off = r * rng.uniform(0.45, 0.6)
        ox, oy = cx + off * math.cos(ang), cy + off * math.sin(ang)
        draw.ellipse([ox - r * 0.95, oy - r * 0.95, ox + r * 0.95, oy + r * 0.95], fill=0)
    elif name == "square":
        rot = rng.uniform(-15, 15) * deg
        pts = [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
        draw.polygon(_transform(pts, cx, cy, r, rot), fill=255)
    elif name == "diamond":
        rot = rng.uniform(-12, 12) * deg
        w = rng.uniform(0.5, 0.65)
        pts = [(0, -1), (w, 0), (0, 1), (-w, 0)]
        draw.polygon(_transform(pts, cx, cy, r, rot), fill=255)
    elif name == "triangle":
        draw.polygon(_regular_polygon(cx, cy, r, 3, rng.uniform(0, 2 * math.pi)), fill=255)
    elif name == "hexagon":
        draw.polygon(_regular_polygon(cx, cy, r, 6, rng.uniform(0, 2 * math.pi)), fill=255)
    elif name == "star":
        rot = rng.uniform(0, 2 * math.pi)
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.42
            a = rot + math.pi * k / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        draw.polygon(pts, fill=255)
    elif name == "cross":
        rot = rng.uniform(-20, 20) * deg
        t = rng.uniform(0.28, 0.36)
        pts = [
            (-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t),
            (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t),
        ]  # fmt: skip
        draw.polygon(_transform(pts, cx, cy, r, rot), fill=255)
    elif name == "arrow":
        rot = rng.uniform(0, 2 * math.pi)
        pts = [(1, 0), (0.1, -0.75), (0.1, -0.3), (-1, -0.3), (-1, 0.3), (0.1, 0.3), (0.1, 0.75)]
        draw.polygon(_transform(pts, cx, cy, r, rot), fill=255)
    else:  # pragma: no cover - guarded by GENERATED_CLASSES
        raise ValueError(f"unknown generated class {name!r}")


def _background(size: int, rng: np.random.Generator) -> Image.Image:
    """Muted gradient plus random strokes and specks (clutter), RGB ``size``x``size``.

    Clutter colours stay within +-70 of the background so the object remains the
    most salient thing without the clutter being trivially separable by colour.
    """
    base = rng.uniform(60, 190, size=3)
    tilt = rng.uniform(-50, 50, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    ang = rng.uniform(0, 2 * math.pi)
    ramp = (math.cos(ang) * xx + math.sin(ang) * yy)[..., None]  # (S, S, 1)
    arr = base[None, None, :] + tilt[None, None, :] * ramp  # (S, S, 3)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)

    def clutter_colour() -> tuple[int, int, int]:
        r, g, b = (int(v) for v in np.clip(base + rng.uniform(-70, 70, size=3), 0, 255))
        return r, g, b

    for _ in range(int(rng.integers(6, 14))):
        x0, y0, x1, y1 = (float(v) for v in rng.uniform(0, size, size=4))
        draw.line(
            [x0, y0, x1, y1],
            fill=clutter_colour(),
            width=SUPERSAMPLE // 2 + int(rng.integers(0, 2)),
        )
    for _ in range(int(rng.integers(4, 10))):
        x, y = (float(v) for v in rng.uniform(0, size, size=2))
        rr = float(rng.uniform(0.7, 2.0)) * SUPERSAMPLE
        draw.ellipse([x - rr, y - rr, x + rr, y + rr], fill=clutter_colour())
    return img


def draw_sample(
    class_index: int, *, image_size: int, rng: np.random.Generator
) -> tuple[Image.Image, Image.Image]:
    """Draw one (RGB image, L mask) pair of class ``class_index`` at ``image_size``."""
    big = image_size * SUPERSAMPLE
    img = _background(big, rng)
    mask = Image.new("L", (big, big), 0)
    r = big * rng.uniform(0.25, 0.38)
    cx = rng.uniform(r * 1.05, big - r * 1.05)
    cy = rng.uniform(r * 1.05, big - r * 1.05)
    _draw_shape(ImageDraw.Draw(mask), GENERATED_CLASSES[class_index], cx, cy, r, rng)

    colour = np.array(_PALETTE[int(rng.integers(len(_PALETTE)))], dtype=np.float32)
    fill = np.broadcast_to(colour, (big, big, 3)).copy()  # (S, S, 3)
    if rng.random() < 0.5:  # striped texture: darker bands at a random angle
        period = rng.uniform(3, 6) * SUPERSAMPLE
        ang = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
        bands = ((math.cos(ang) * xx + math.sin(ang) * yy) // period) % 2 == 1  # (S, S)
        fill[bands] *= 0.55
    m = (np.asarray(mask) > 0)[..., None]  # (S, S, 1)
    out = np.where(m, fill, np.asarray(img, dtype=np.float32))  # (S, S, 3)
    small = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB").resize(
        (image_size, image_size), Image.Resampling.LANCZOS
    )
    noisy = np.asarray(small, dtype=np.float32) + rng.normal(0, 6, size=(image_size, image_size, 3))
    small = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    small_mask = mask.resize((image_size, image_size), Image.Resampling.BOX).point(
        lambda v: 255 if v >= 128 else 0
    )
    return small, small_mask


def _build_index(root: Path, config: GeneratedDatasetConfig) -> DatasetIndex:
    splits: dict[str, list[ImageRecord]] = {}
    for split in SPLITS:
        recs = []
        for ci, name in enumerate(GENERATED_CLASSES):
            for i in range(config.per_class(split)):
                stem = f"{i:06d}"
                recs.append(
                    ImageRecord(
                        path=str(root / split / name / f"{stem}.png"),
                        label=ci,
                        split=split,
                        key=f"{split}/{name}/{stem}",
                        mask=str(root / "masks" / split / name / f"{stem}.png"),
                    )
                )
        splits[split] = recs
    return DatasetIndex(class_names=list(GENERATED_CLASSES), splits=splits, source="generated")


def _meta(config: GeneratedDatasetConfig) -> dict:
    return {"generator_version": GENERATOR_VERSION, "classes": list(GENERATED_CLASSES)} | asdict(
        config
    )


def generate_dataset(*, root: Path, config: GeneratedDatasetConfig) -> DatasetIndex:
    """Write the generated tree under ``root`` (idempotent) and return its index.

    If ``root/generated_meta.json`` matches ``config`` and every file exists,
    nothing is drawn. Otherwise all files are (re)written and the meta file is
    written last, so an interrupted run is redone on the next call.
    """
    root = Path(root)
    index = _build_index(root, config)
    meta_path = root / META_FILE
    if meta_path.exists():
        try:
            same = json.loads(meta_path.read_text()) == _meta(config)
        except json.JSONDecodeError:
            same = False
        if same and all(
            Path(r.path).exists() and Path(r.mask or "").exists()
            for rs in index.splits.values()
            for r in rs
        ):
            return index
        meta_path.unlink()
    split_ids = {s: i for i, s in enumerate(SPLITS)}
    for split, recs in index.splits.items():
        for ci in range(len(GENERATED_CLASSES)):
            (root / split / GENERATED_CLASSES[ci]).mkdir(parents=True, exist_ok=True)
            (root / "masks" / split / GENERATED_CLASSES[ci]).mkdir(parents=True, exist_ok=True)
        for rec in recs:
            i = int(Path(rec.path).stem)
            rng = np.random.default_rng((config.seed, split_ids[split], rec.label, i))
            img, mask = draw_sample(rec.label, image_size=config.image_size, rng=rng)
            img.save(rec.path, format="PNG")
            mask.save(str(rec.mask), format="PNG")
    meta_path.write_text(json.dumps(_meta(config), indent=1))
    return index
