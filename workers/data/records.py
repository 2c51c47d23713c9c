"""Dataset index records shared by every data source.

A :class:`DatasetIndex` is the only thing the rest of the pipeline knows about
a dataset: ordered class names (index = class index), per-split lists of
:class:`ImageRecord` and the images that were skipped because they could not be
decoded. It round-trips through JSON so the pipeline's ``data`` step can store
it once and every later step reads the same list in the same order.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

SPLITS: tuple[str, ...] = ("train", "val", "test")
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
)


@dataclass(frozen=True)
class ImageRecord:
    """One labelled image.

    ``key`` is stable and human-readable (``"test/circle/000012"``): split,
    class display name and file stem. It identifies the image across variants,
    stimuli and the manifest. ``mask`` is an optional binary object mask (same
    size as the image, non-zero = object).
    """

    path: str
    label: int
    split: str
    key: str
    mask: str | None = None


@dataclass(frozen=True)
class SkippedImage:
    """An image that could not be used, and why (never fatal, always reported)."""

    path: str
    reason: str


@dataclass
class DatasetIndex:
    """Class names plus per-split records; JSON round-trippable."""

    class_names: list[str]
    splits: dict[str, list[ImageRecord]]
    skipped: list[SkippedImage] = field(default_factory=list)
    source: str = ""

    def to_json(self) -> dict:
        return {
            "class_names": list(self.class_names),
            "splits": {s: [asdict(r) for r in rs] for s, rs in self.splits.items()},
            "skipped": [asdict(s) for s in self.skipped],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, d: dict) -> DatasetIndex:
        return cls(
            class_names=list(d["class_names"]),
            splits={s: [ImageRecord(**r) for r in rs] for s, rs in d["splits"].items()},
            skipped=[SkippedImage(**s) for s in d.get("skipped", [])],
            source=d.get("source", ""),
        )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DatasetIndex:
        return cls.from_json(json.loads(path.read_text()))

    def counts(self) -> dict[str, int]:
        return {s: len(rs) for s, rs in self.splits.items()}


def probe_image(path: Path) -> str | None:
    """Return ``None`` if ``path`` decodes as an image, else a short reason.

    JPEGs are decoded in draft mode (DCT-scaled, several times faster than a
    full decode) which still reads every scan, so truncated files are caught.
    """
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                im.draft("RGB", (64, 64))
            im.load()
            if im.width < 1 or im.height < 1:
                return "empty image"
    except Exception as exc:  # noqa: BLE001 - any decoder failure means "skip it"
        return f"{type(exc).__name__}: {exc}"
    return None


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan_images(folder: Path, skipped: list[SkippedImage], *, probe: bool) -> list[Path]:
    """:func:`list_images`, minus those :func:`probe_image` rejects (appended to ``skipped``)."""
    good = []
    for p in list_images(folder):
        reason = probe_image(p) if probe else None
        if reason is None:
            good.append(p)
        else:
            skipped.append(SkippedImage(path=str(p), reason=reason))
    return good
