"""Attribution maps: every method maps a normalised (N, 3, H, W) batch to (N, H, W) in [0, 1].

Common signature (the registry's contract)::

    fn(model, images, *, targets=None, layer=None) -> Tensor[N, H, W]

``targets`` (length N, else ``ValueError``) default to the predicted classes;
``layer`` is used by the CAM methods (default
:func:`workers.models.default_target_layer`) and ignored by pixel-gradient
methods. Maps live on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from workers.attribution.cam import (
    CamResult,
    capture_layer_output,
    gradcam,
    gradcam_pp,
    gradcam_pp_result,
    gradcam_result,
    normalize_maps,
)
from workers.attribution.gradients import (
    guided_backprop,
    guided_gradcam,
    integrated_gradients,
    smoothgrad,
    vanilla_gradient,
)

AttributionFn = Callable[..., torch.Tensor]

ATTRIBUTION_METHODS: dict[str, AttributionFn] = {
    "gradcam": gradcam,
    "gradcam_pp": gradcam_pp,
    "vanilla_gradient": vanilla_gradient,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
    "guided_gradcam": guided_gradcam,
}
# Methods that also return the logits of their own forward pass: with targets=None
# they explain the predicted class and report it, so no separate prediction pass.
RESULT_METHODS: dict[str, Callable[..., CamResult]] = {
    "gradcam": gradcam_result,
    "gradcam_pp": gradcam_pp_result,
}
# Methods whose map depends on the CAM layer (recorded in provenance).
LAYER_METHODS: frozenset[str] = frozenset({"gradcam", "gradcam_pp", "guided_gradcam"})

__all__ = [
    "ATTRIBUTION_METHODS",
    "LAYER_METHODS",
    "RESULT_METHODS",
    "AttributionFn",
    "CamResult",
    "capture_layer_output",
    "gradcam",
    "gradcam_pp",
    "gradcam_pp_result",
    "gradcam_result",
    "guided_backprop",
    "guided_gradcam",
    "integrated_gradients",
    "normalize_maps",
    "smoothgrad",
    "vanilla_gradient",
]
