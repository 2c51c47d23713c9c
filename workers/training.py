"""Supervised training / fine-tuning with early stopping on validation accuracy.

Invariants:
- Deterministic by ``TrainConfig.seed``: the RNG is seeded at the start, batch
  order comes from a seeded generator, and nothing depends on wall time.
- The device is the model's (``next(model.parameters()).device``).
- Inputs arrive as uint8 ``(N, 3, H, W)``; normalisation and the optional
  horizontal flip run batched on the device.
- Pruning masks survive: a pruned model keeps its ``weight_orig * weight_mask``
  reparametrisation, so masked weights get zero gradient and stay zero. The best
  state (by val accuracy) is restored at the end; ``.weight`` is recomputed by
  the forward pass in :func:`evaluate`, so it is never stale afterwards.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from workers.data.transforms import Preprocessing

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and stopping rule. Defaults suit the generated demo on 2 CPU cores."""

    max_epochs: int = 12
    patience: int = 3
    lr: float = 2e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd"
    momentum: float = 0.9
    cosine: bool = True  # cosine-anneal the lr over max_epochs
    batch_size: int = 32
    eval_batch_size: int = 256
    label_smoothing: float = 0.0
    augment: str = "none"  # "none" | "hflip" | "dihedral" (random flips + 90-degree rotations)
    num_workers: int = 0
    seed: int = 0
    target_accuracy: float | None = None  # stop once val accuracy reaches this
    rewind_epoch: int | None = None  # snapshot weights after this many epochs (0 = init)


@dataclass
class TrainResult:
    """Accuracies are fractions in [0, 1]; ``history`` has one dict per epoch."""

    best_val_accuracy: float
    epochs_run: int
    best_epoch: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    rewind_state: dict[str, torch.Tensor] | None = None


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def iterate_batches(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images (B, 3, H, W), labels (B,)); fast path for in-memory sets."""
    if isinstance(dataset, TensorDataset):
        images, labels = dataset.tensors
        n = len(labels)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            idx = order[i : i + batch_size]
            yield images[idx], labels[idx]
        return
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
        num_workers=num_workers, pin_memory=torch.cuda.is_available(),
    )  # fmt: skip
    yield from loader


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    *,
    preprocessing: Preprocessing,
    batch_size: int = 256,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode predictions -> (predicted (N,), labels (N,)), both int64 on CPU."""
    was_training = model.training
    model.eval()
    dev = model_device(model)
    preds, labels = [], []
    try:
        for x, y in iterate_batches(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers
        ):
            logits = model(preprocessing.normalize(x.to(dev, non_blocking=True)))  # (B, K)
            preds.append(logits.argmax(1).cpu())
            labels.append(torch.as_tensor(y))
    finally:
        model.train(was_training)
    if not preds:
        return torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64)
    return torch.cat(preds), torch.cat(labels)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    preprocessing: Preprocessing,
    batch_size: int = 256,
    num_workers: int = 0,
) -> float:
    """Top-1 accuracy in [0, 1] (``nan`` for an empty set)."""
    pred, y = predict(
        model, dataset, preprocessing=preprocessing, batch_size=batch_size, num_workers=num_workers
    )
    return float((pred == y).float().mean()) if len(y) else math.nan


def augment_batch(x: torch.Tensor, *, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Label-preserving augmentation of a (B, 3, H, W) batch, on its device.

    "dihedral" applies one of the 8 flips/90-degree rotations per image; only
    valid where every class is invariant to them (true for the generated shapes,
    whose classes are defined up to rotation and reflection), and needs H == W.
    """
    if mode == "none":
        return x
    b = x.shape[0]
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    x = torch.where(flip, x.flip(-1), x)
    if mode == "hflip":
        return x
    if mode != "dihedral":
        raise ValueError(f"unknown augment mode {mode!r}")
    k = torch.randint(0, 4, (b,), generator=generator).to(x.device)[:, None, None, None]
    out = x
    for r in (1, 2, 3):
        out = torch.where(k == r, torch.rot90(x, r, dims=(2, 3)), out)
    return out


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_model(
    model: nn.Module,
    *,
    train: Dataset,
    val: Dataset,
    preprocessing: Preprocessing,
    config: TrainConfig,
    progress: Progress | None = None,
) -> TrainResult:
    """Train in place, keep the best-val-accuracy state, return the history.

    Stops after ``patience`` epochs without a strictly better val accuracy, at
    ``max_epochs``, or once ``target_accuracy`` is reached.
    """
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    dev = model_device(model)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            params, lr=config.lr, weight_decay=config.weight_decay
        )
    elif config.optimizer == "sgd":
        opt = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, config.max_epochs))
        if config.cosine
        else None
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    rewind = _snapshot(model) if config.rewind_epoch == 0 else None
    best_acc, best_epoch, best_state = -1.0, 0, _snapshot(model)
    history: list[dict] = []
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in iterate_batches(
            train, batch_size=config.batch_size, shuffle=True, generator=gen,
            num_workers=config.num_workers,
        ):  # fmt: skip
            x = preprocessing.normalize(x.to(dev, non_blocking=True))  # (B, 3, H, W)
            y = torch.as_tensor(y).to(dev)
            x = augment_batch(x, mode=config.augment, generator=gen)
            logits = model(x)  # (B, K)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
        if sched is not None:
            sched.step()
        if config.rewind_epoch == epoch:
            rewind = _snapshot(model)
        val_acc = evaluate(
            model, val, preprocessing=preprocessing, batch_size=config.eval_batch_size,
            num_workers=config.num_workers,
        )  # fmt: skip
        history.append(
            {
                "epoch": epoch,
                "loss": loss_sum / max(1, total),
                "train_running_accuracy": correct / max(1, total),
                "val_accuracy": val_acc,
            }
        )
        if val_acc > best_acc:
            best_acc, best_epoch, best_state = val_acc, epoch, _snapshot(model)
        if progress:
            progress(epoch / config.max_epochs, f"epoch {epoch}: val accuracy {val_acc:.3f}")
        if config.target_accuracy is not None and val_acc >= config.target_accuracy:
            break
        if epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return TrainResult(
        best_val_accuracy=best_acc,
        epochs_run=epoch,
        best_epoch=best_epoch,
        seconds=time.perf_counter() - start,
        history=history,
        rewind_state=rewind,
    )
