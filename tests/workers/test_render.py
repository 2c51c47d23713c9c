from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workers.render import (
    JET_LUT,
    heatmap,
    heatmap_batch,
    is_blank,
    occlusion,
    occlusion_batch,
    occlusion_masks,
    save_png,
)


def _inputs(h: int = 12, w: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(10, 256, (h, w, 3), dtype=np.uint8)  # no pure black pixels
    cam = rng.random((h, w)).astype(np.float32)
    return image, cam


def test_heatmap_is_exactly_the_alpha_blend_of_jet_and_image() -> None:
    # given an image and a map
    image, cam = _inputs()
    # when blended at the paper's opacity
    out = heatmap(image, cam, alpha=0.4)
    # then out = round(0.4 * jet(map) + 0.6 * image), no renormalisation
    colour = JET_LUT[np.round(cam * 255).astype(int)]
    expected = np.clip(np.round(0.4 * colour + 0.6 * image.astype(np.float32)), 0, 255)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out, expected.astype(np.uint8))


def test_jet_runs_from_blue_for_least_to_red_for_most_important() -> None:
    lo, hi = JET_LUT[0], JET_LUT[255]
    assert lo[2] > 100 and lo[0] == 0  # dark blue
    assert hi[0] > 100 and hi[2] == 0  # dark red


def test_heatmap_accepts_pil_images() -> None:
    image, cam = _inputs()
    assert np.array_equal(heatmap(Image.fromarray(image), cam), heatmap(image, cam))


@pytest.mark.parametrize("hidden", [0.85, 0.9, 0.95])
def test_occlusion_hides_exactly_the_requested_share_of_least_important_pixels(hidden) -> None:
    # given an image without black pixels and a map
    image, cam = _inputs(16, 15)
    # when occluded
    out = occlusion(image, cam, hidden=hidden)
    # then exactly round(hidden*H*W) pixels are black and they are the lowest-valued ones
    black = (out == 0).all(-1)
    k = round(hidden * 16 * 15)
    assert black.sum() == k
    assert cam[black].max() <= cam[~black].min()
    assert np.array_equal(out[~black], image[~black])


def test_occlusion_breaks_ties_deterministically_in_raster_order() -> None:
    # given a constant map (all ties)
    image = np.full((4, 5, 3), 200, dtype=np.uint8)
    out = occlusion(image, np.zeros((4, 5)), hidden=0.5, fill=(128, 128, 128))
    # then the first 10 pixels in row-major order are hidden with the grey fill
    hidden = (out == 128).all(-1).ravel()
    assert hidden.tolist() == [True] * 10 + [False] * 10


def test_batched_rendering_matches_single_and_returns_uint8() -> None:
    imgs, cams = zip(*(_inputs(8, 8, s) for s in range(3)), strict=True)
    batch = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    maps = torch.from_numpy(np.stack(cams))
    heat = heatmap_batch(batch, maps, alpha=0.4)
    occ = occlusion_batch(batch, maps, hidden=0.9)
    assert heat.dtype == torch.uint8 and occ.dtype == torch.uint8 and heat.shape == (3, 8, 8, 3)
    for i in range(3):
        assert np.array_equal(heat[i].numpy(), heatmap(imgs[i], cams[i]))
        assert np.array_equal(occ[i].numpy(), occlusion(imgs[i], cams[i]))


def test_render_rejects_bad_maps() -> None:
    image, cam = _inputs()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        heatmap(image, cam * 2)
    with pytest.raises(ValueError, match="shape"):
        occlusion(image, cam[:-1])


def test_is_blank_flags_degenerate_maps() -> None:
    assert is_blank(np.zeros((5, 5)))
    assert is_blank(torch.full((5, 5), 0.3))
    assert is_blank(np.array([[np.nan, 1.0]]))
    assert not is_blank(np.linspace(0, 1, 25).reshape(5, 5))


def _png_chunks(path: Path) -> list[bytes]:
    data = path.read_bytes()[8:]
    chunks = []
    while data:
        n = int.from_bytes(data[:4], "big")
        kind, body, crc = data[4:8], data[8 : 8 + n], data[8 + n : 12 + n]
        assert int.from_bytes(crc, "big") == zlib.crc32(kind + body)
        chunks.append(kind)
        data = data[12 + n :]
    return chunks


def test_png_is_saved_without_metadata(tmp_path: Path) -> None:
    image, _ = _inputs()
    save_png(tmp_path / "x.png", image)
    assert set(_png_chunks(tmp_path / "x.png")) == {b"IHDR", b"IDAT", b"IEND"}
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), image)


def test_catch_renders_are_the_real_render_of_the_rotated_map_and_a_light_occlusion() -> None:
    from workers.pipeline.attribute import RENDERED, render_stimuli

    # given a batch of photos and maps at display size
    g = torch.Generator().manual_seed(3)
    images = torch.randint(1, 256, (3, 3, 20, 20), dtype=torch.uint8, generator=g)
    maps = torch.rand(3, 20, 20, generator=g)
    # when the attribute step renders them
    out = render_stimuli(images, maps, alpha=0.4, hidden=0.9, catch_hidden=0.25, fill=(0, 0, 0))
    assert sorted(out) == sorted(RENDERED)
    assert all(v.dtype == torch.uint8 and v.shape == (3, 20, 20, 3) for v in out.values())
    # then rot180 is exactly the real rendering of the saliency map rotated 180 degrees
    rotated = torch.rot90(maps, 2, dims=(1, 2))
    assert torch.equal(out[("heat", "rot180")], heatmap_batch(images, rotated, alpha=0.4))
    assert torch.equal(
        out[("occlusion", "rot180")], occlusion_batch(images, maps.flip(-2, -1), hidden=0.9)
    )
    # over the upright photo: where the rotated map is shown, the photo is not rotated
    shown = ~occlusion_masks(rotated, hidden=0.9)
    img_hwc = images.permute(0, 2, 3, 1)
    assert torch.equal(out[("occlusion", "rot180")][shown], img_hwc[shown])
    # and it differs from the real map's rendering
    assert not torch.equal(out[("heat", "rot180")], out[("heat", "")])
    # light hides exactly 25 % (the least important pixels), the real one 90 %
    light_hidden = (out[("occlusion", "light")] == 0).all(-1).float().mean((1, 2))
    real_hidden = (out[("occlusion", "")] == 0).all(-1).float().mean((1, 2))
    assert torch.allclose(light_hidden, torch.full((3,), round(0.25 * 400) / 400))
    assert torch.allclose(real_hidden, torch.full((3,), round(0.9 * 400) / 400))
    # the pixels light hides are among those the real map hides
    light_mask = (out[("occlusion", "light")] == 0).all(-1)
    assert bool((light_mask <= (out[("occlusion", "")] == 0).all(-1)).all())
