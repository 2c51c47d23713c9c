"""Prune-then-retrain schedules: iterative fine-tuning, lottery ticket, LR rewinding.

- ``iterative`` (the paper): prune to the next CPR, then fine-tune the
  surviving weights with the fine-tuning config (small LR) to convergence
  (early stopping on val accuracy).
- ``lottery`` (Frankle et al., weight rewinding): prune by the trained weights'
  magnitudes, then rewind the surviving weights (and every other parameter and
  buffer) to their values at ``rewind_epoch`` of the original training, keep the
  masks, and retrain with the original training config.
- ``lr_rewind`` (Renda et al.): keep the trained surviving weights but retrain
  with the original training config (its LR schedule rewound to the start).

Masks stay in place during retraining (no ``prune.remove``), so pruned weights
cannot grow back and the CPR is unchanged by retraining; callers re-measure it
after a forward pass anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset

from workers.data.transforms import Preprocessing
from workers.pruning.counting import is_reparametrised
from workers.training import Progress, TrainConfig, TrainResult, train_model

SCHEDULES: tuple[str, ...] = ("iterative", "lottery", "lr_rewind")


@dataclass(frozen=True)
class ScheduleConfig:
    kind: str = "iterative"
    finetune: TrainConfig = field(
        default_factory=lambda: TrainConfig(max_epochs=2, patience=1, lr=1e-3)
    )
    retrain: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; expected one of {SCHEDULES}")

    def train_config(self) -> TrainConfig:
        return self.finetune if self.kind == "iterative" else self.retrain


def rewind_weights(model: nn.Module, rewind_state: dict[str, torch.Tensor]) -> None:
    """Load dense ``rewind_state`` into a masked model: ``x.weight`` -> ``x.weight_orig``.

    Masks are kept; shapes must match (not usable after structured pruning).
    """
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key, value in rewind_state.items():
        mod_name, pname = key.rsplit(".", 1) if "." in key else ("", key)
        module = model.get_submodule(mod_name)
        target = f"{key}_orig" if is_reparametrised(module, pname) else key
        if target not in own or own[target].shape != value.shape:
            raise ValueError(f"rewind state does not fit the model at {key!r}")
        mapped[target] = value
    missing = {k for k in own if not k.endswith("_mask")} - set(mapped)
    if missing:
        raise ValueError(f"rewind state lacks {sorted(missing)[:5]}")
    with torch.no_grad():
        for k, v in mapped.items():
            own[k].copy_(v.to(own[k].device))


def retrain_after_pruning(
    model: nn.Module,
    *,
    schedule: ScheduleConfig,
    train: Dataset,
    val: Dataset,
    preprocessing: Preprocessing,
    rewind_state: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Apply ``schedule`` to a freshly pruned model, in place."""
    if schedule.kind == "lottery":
        if rewind_state is None:
            raise ValueError("lottery schedule needs the rewind state from the original training")
        rewind_weights(model, rewind_state)
    return train_model(
        model,
        train=train,
        val=val,
        preprocessing=preprocessing,
        config=schedule.train_config(),
        progress=progress,
    )
