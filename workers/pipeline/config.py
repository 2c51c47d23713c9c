"""``PipelineConfig``: the one object the Django side builds, stores and passes back.

It is a frozen dataclass that round-trips through JSON (``to_dict`` /
``from_dict``); ``from_dict`` rejects unknown keys by name so a typo in a
researcher's form never silently falls back to a default. Defaults run the
whole demo (generated shapes, demo_vgg, CPR 2..32) on a laptop CPU in well
under three minutes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from workers.attribution import ATTRIBUTION_METHODS
from workers.data.generated import GeneratedDatasetConfig
from workers.models import ARCHITECTURES
from workers.pruning import METHODS as PRUNE_METHODS
from workers.pruning import SCHEDULES, ScheduleConfig
from workers.training import TrainConfig

DATASETS: tuple[str, ...] = ("generated", "imagenette", "folder")


def cpr_label(cpr: float) -> str:
    """Variant label: ``cpr1``, ``cpr2``, ``cpr32``, ``cpr2.5`` (integers without ".0")."""
    c = float(cpr)
    return f"cpr{int(c)}" if c.is_integer() else f"cpr{c:g}"


@dataclass(frozen=True)
class PipelineConfig:
    dataset: str = "generated"  # "generated" | "imagenette" | "folder"
    data_root: str | None = None  # imagenette/folder: required; generated: default workdir/"data"
    architecture: str = "demo_vgg"  # "demo_vgg" | "vgg16" | "resnet18" | "resnet50"
    pretrained: bool = False
    cprs: tuple[float, ...] = (2, 4, 8, 16, 32)
    prune_method: str = "global"  # "global" | "layerwise" | "structured"
    schedule: str = "iterative"  # "iterative" | "lottery" | "lr_rewind"
    images_per_class: int = 3
    methods: tuple[str, ...] = ("gradcam",)
    alpha: float = 0.4
    hidden: float = 0.9
    catch_hidden: float = 0.25  # 'light' catch occlusion-maps hide this share (class obvious)
    seed: int = 0
    device: str | None = None  # None: cuda if available else cpu
    # --- pruning
    prune_scope: str = "conv"  # "conv" (the paper) | "all" (conv + linear)
    # --- training (initial fit / fine-tuning of pretrained weights)
    train_max_epochs: int = 10
    train_patience: int = 3
    train_lr: float | None = None  # None: 2e-3 from scratch (demo), 1e-4 for pretrained weights
    train_optimizer: str = "adam"
    weight_decay: float = 0.0
    batch_size: int = 32
    augment: str | None = None  # None: "none" for generated data, else "hflip"
    target_accuracy: float | None = None  # stop training early once val accuracy reaches it
    # --- retraining after each pruning step
    finetune_max_epochs: int = 2
    finetune_patience: int = 1
    finetune_lr: float | None = None  # None: half the training lr
    rewind_epoch: int = 1  # lottery: weights rewound to this epoch of the original training
    # --- data
    image_size: int = 64  # demo_vgg input size (torchvision archs use their weights' 224)
    gen_train_per_class: int = 300
    gen_val_per_class: int = 30
    gen_test_per_class: int = 30
    test_fraction: float = 0.5  # imagenette/folder: share of val that becomes test
    display_names: tuple[tuple[str, str], ...] = ()  # imagenette: (wnid, name) overrides
    num_workers: int = 0
    weights_dir: str | None = None  # torch hub checkpoints dir override
    # --- stimuli and metrics
    display_size: int | None = None  # None: 224 or the model input size if larger
    occlusion_fill: tuple[int, int, int] = (0, 0, 0)
    attribution_batch_size: int = 32
    deletion_steps: int = 10  # 0 disables the deletion metric
    deletion_baseline: str = "road"  # "road" (noisy linear imputation) | "blur" | "mean"

    def __post_init__(self) -> None:
        # Normalise JSON-ish inputs (lists) to tuples so the config stays hashable.
        for name in ("cprs", "methods", "occlusion_fill"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(
            self,
            "display_names",
            tuple(
                (str(k), str(v))
                for k, v in (
                    self.display_names.items()
                    if isinstance(self.display_names, dict)
                    else self.display_names
                )
            ),
        )
        object.__setattr__(self, "cprs", tuple(sorted(float(c) for c in self.cprs)))
        errors = self._errors()
        if errors:
            raise ValueError("invalid PipelineConfig: " + "; ".join(errors))

    def _errors(self) -> list[str]:
        e = []
        if self.dataset not in DATASETS:
            e.append(f"dataset must be one of {DATASETS}")
        if self.dataset != "generated" and not self.data_root:
            e.append(f"data_root is required for dataset {self.dataset!r}")
        if self.architecture not in ARCHITECTURES:
            e.append(f"architecture must be one of {ARCHITECTURES}")
        if self.pretrained and self.architecture == "demo_vgg":
            e.append("demo_vgg has no pretrained weights")
        if not self.cprs or any(not (c > 1 and math.isfinite(c)) for c in self.cprs):
            e.append("cprs must be non-empty, finite and > 1 (CPR 1 is the unpruned model)")
        if len({cpr_label(c) for c in self.cprs}) != len(self.cprs):
            e.append("cprs must be distinct")
        if self.prune_method not in PRUNE_METHODS:
            e.append(f"prune_method must be one of {PRUNE_METHODS}")
        if self.schedule not in SCHEDULES:
            e.append(f"schedule must be one of {SCHEDULES}")
        if self.schedule == "lottery" and self.prune_method == "structured":
            e.append("lottery rewinding needs unstructured pruning (shapes must not change)")
        if self.prune_scope not in ("conv", "all"):
            e.append("prune_scope must be 'conv' or 'all'")
        unknown = [m for m in self.methods if m not in ATTRIBUTION_METHODS]
        if not self.methods or unknown:
            e.append(
                f"methods must be non-empty, from {sorted(ATTRIBUTION_METHODS)}; got {unknown}"
            )
        if not 0 <= self.alpha <= 1:
            e.append("alpha must be in [0, 1]")
        if not 0 <= self.hidden <= 1:
            e.append("hidden must be in [0, 1]")
        if not 0 <= self.catch_hidden < self.hidden:
            e.append("catch_hidden must be in [0, hidden): a catch map must hide less")
        if self.images_per_class < 1:
            e.append("images_per_class must be >= 1")
        if self.augment not in (None, "none", "hflip", "dihedral"):
            e.append("augment must be None, 'none', 'hflip' or 'dihedral'")
        if self.deletion_baseline not in ("mean", "blur", "road"):
            e.append("deletion_baseline must be 'mean', 'blur' or 'road'")
        if len(self.occlusion_fill) != 3 or any(
            not 0 <= int(v) <= 255 for v in self.occlusion_fill
        ):
            e.append("occlusion_fill must be three ints in [0, 255]")
        if self.train_lr is not None and not self.train_lr > 0:
            e.append("train_lr must be > 0")
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            e.append("finetune_lr must be > 0")
        if self.rewind_epoch < 0 or self.rewind_epoch > self.train_max_epochs:
            e.append("rewind_epoch must be in [0, train_max_epochs]")
        return e

    @classmethod
    def from_dict(cls, d: dict) -> PipelineConfig:
        """Build from a JSON-like dict; unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown PipelineConfig keys: {', '.join(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); ``from_dict(to_dict())`` == self."""
        out = dataclasses.asdict(self)
        out["cprs"] = list(self.cprs)
        out["methods"] = list(self.methods)
        out["occlusion_fill"] = list(self.occlusion_fill)
        out["display_names"] = [list(p) for p in self.display_names]
        return out

    # --- derived configs -------------------------------------------------------------
    @property
    def variant_labels(self) -> list[str]:
        return ["cpr1"] + [cpr_label(c) for c in self.cprs]

    def generated_config(self) -> GeneratedDatasetConfig:
        return GeneratedDatasetConfig(
            seed=self.seed,
            image_size=self.image_size,
            train_per_class=self.gen_train_per_class,
            val_per_class=self.gen_val_per_class,
            test_per_class=self.gen_test_per_class,
        )

    def resolved_train_lr(self) -> float:
        """Adam lr: 2e-3 trains the demo net from scratch in a minute; pretrained
        ImageNet features are fine-tuned gently (1e-4) so they are not destroyed."""
        if self.train_lr is not None:
            return self.train_lr
        if self.pretrained:
            return 1e-4
        return 2e-3 if self.architecture == "demo_vgg" else 1e-3

    def resolved_finetune_lr(self) -> float:
        return self.finetune_lr if self.finetune_lr is not None else self.resolved_train_lr() / 2

    def augment_mode(self) -> str:
        if self.augment is not None:
            return self.augment
        return "none" if self.dataset == "generated" else "hflip"

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            max_epochs=self.train_max_epochs,
            patience=self.train_patience,
            lr=self.resolved_train_lr(),
            optimizer=self.train_optimizer,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            augment=self.augment_mode(),
            num_workers=self.num_workers,
            seed=self.seed,
            target_accuracy=self.target_accuracy,
            rewind_epoch=self.rewind_epoch if self.schedule == "lottery" else None,
        )

    def schedule_config(self, step_index: int) -> ScheduleConfig:
        """Retraining config for the ``step_index``-th pruning step (seed varies per step)."""
        seed = self.seed + 1000 * (step_index + 1)
        finetune = dataclasses.replace(
            self.train_config(),
            max_epochs=self.finetune_max_epochs,
            patience=self.finetune_patience,
            lr=self.resolved_finetune_lr(),
            seed=seed,
            rewind_epoch=None,
        )
        retrain = dataclasses.replace(self.train_config(), seed=seed, rewind_epoch=None)
        return ScheduleConfig(kind=self.schedule, finetune=finetune, retrain=retrain)
