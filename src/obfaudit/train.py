"""Training: one fit loop shared by every network, and the ObfNet objective.

Batches are sliced from tensors in memory (the datasets are small), in a seeded order.
On CPU, bfloat16 autocast is the default: on this class of machine it trains these
networks 1.6-1.9x faster than float32 with the same accuracy (see benchmarks/). Weights,
optimiser state and every reported metric stay in float32.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from obfaudit._io import resolve_device
from obfaudit.errors import ObfauditError
from obfaudit.train_config import PRECISIONS, SCHEDULES, TrainConfig  # noqa: F401  (re-exported)

#: The share of a one-cycle schedule's steps spent raising the learning rate (PyTorch's default).
WARMUP = 0.3

#: A classifier whose hold-out accuracy is 100% stops there: no later epoch could be kept instead.
STOP_WHEN_PERFECT = True

#: One INFO line per epoch; the CLI shows them when stderr is not a terminal (no progress bar).
log = logging.getLogger("obfaudit.train")


@dataclass
class FitResult:
    """What a training run did: epochs, losses, the best epoch and throughput."""

    epochs_run: int = 0
    best_epoch: int = 0
    train_loss: float = math.nan
    val_loss: float = math.nan
    val_metric: float | None = None
    seconds: float = 0.0
    samples_per_s: float = 0.0
    compiled: bool = False
    """Whether its steps ran compiled (``torch.compile``; see :func:`compiles`)."""
    stopped: str | None = None
    """Why it ended before its last epoch: ``perfect`` (a classifier's hold-out accuracy reached 100%,
    which no later epoch can beat) or ``patience`` (no better hold-out score for that many epochs)."""
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images stored as uint8 (large image folders) become floats in [0, 1] batch by batch."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


#: Training steps a fit must plan before ``OBFAUDIT_COMPILE=on`` compiles its step: compiling the MLP
#: RecNet's step took 7 s in a fresh process and 2 s from Inductor's on-disk cache, and saved 8.8 ms of
#: its 23 ms per step on this 2-core CPU (benchmarks/compile_speed.py): it pays from about 800 steps.
COMPILE_MIN_STEPS = 1000
#: Why compiling failed in this process (then every later fit trains eagerly, without trying again).
_COMPILE_FAILED: list[str] = []


def compile_mode() -> str:
    """``$OBFAUDIT_COMPILE``: off (the default), on (the steps that ran faster compiled: see
    :func:`compiles`) or all (every fit's step, for machines where that was not measured)."""
    import os

    mode = os.environ.get("OBFAUDIT_COMPILE", "off").lower()
    return {"1": "on", "0": "off", "true": "on", "false": "off", "": "off"}.get(mode, mode)


def compiles(model: nn.Module, device: torch.device, steps: int, *, plain: bool) -> bool:
    """Whether :func:`fit` compiles the step of ``model`` (``torch.compile``).

    Off by default: on this 2-core CPU with bfloat16 autocast the MLP RecNet's step ran 1.5-1.8x faster
    compiled, and every network with convolutions (ObfNet-CNN, ObfNet-MLP through InfNet-CNN,
    InfNet-CNN) 0.6-0.9x, slower (benchmarks/compile_speed.py); but end to end the README's audit took
    250 s with its MLP steps compiled against 233 s eager: each network shape compiles once per process
    (2-9 s), and early stopping ends most fits long before the compiled steps repay it. ``on`` compiles
    the step of a network trained on its own (``plain``: not through a frozen partner such as the
    InfNet), without convolutions, over at least :data:`COMPILE_MIN_STEPS` planned steps; ``all``
    every step. A defence's objective is never compiled (see :func:`fit`)."""
    mode = compile_mode()
    if _COMPILE_FAILED or mode == "off":  # once it failed in this process, it would again
        return False
    if mode == "all":
        return True
    has_conv = any(isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) for m in model.modules())
    return plain and not has_conv and steps >= COMPILE_MIN_STEPS


def _split(n: int, val_fraction: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    n_val = int(round(n * val_fraction))
    return perm[n_val:], perm[:n_val]


def hold_out(n: int, config: TrainConfig) -> torch.Tensor:
    """The indices :func:`fit` holds out of ``n`` training examples under ``config`` (empty: none)."""
    return _split(
        n, config.val_fraction if config.patience else 0.0, torch.Generator().manual_seed(config.seed)
    )[1]


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: TrainConfig,
    *,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    metric: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
    set_mode: Callable[[bool], None] | None = None,
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train ``model``'s parameters with Adam to minimise ``loss_fn(forward(x), y)``.

    Args:
        model: the module whose parameters are trained (moved to the device).
        x, y: training inputs and targets, in memory.
        loss_fn: loss of a batch of outputs against targets.
        config: the run's settings.
        forward: maps a batch to outputs; defaults to ``model``. The ObfNet objective
            passes ``infnet(obfnet(x))`` here.
        metric: a score of outputs against targets, reported on the validation split.
        set_mode: called with True before training epochs and False before validation,
            for modules other than ``model`` whose mode must follow (e.g. a frozen InfNet).
        objective: the training loss of a batch (inputs, targets), run under autocast,
            instead of ``loss_fn(forward(x), y)``; validation still uses ``forward`` and
            ``loss_fn``. A defence adds its penalty here, and may step its own optimiser
            (an adversary's) inside it before returning the obfuscator's loss.

    Returns:
        The run's summary. With early stopping, ``model`` ends with its best weights.
    """
    device = resolve_device(config.device)
    if config.shift and x.ndim == 4 and config.shift >= min(x.shape[2:]):
        raise ObfauditError(
            f"--shift {config.shift} moves {tuple(x.shape[2:])} images out of their own frame: "
            f"use fewer than {min(x.shape[2:])} pixels"
        )
    model.to(device)
    forward = forward or model
    if device.type == "cuda":  # the data moves to the GPU once, not batch by batch
        x, y = x.to(device), y.to(device)
    g = torch.Generator().manual_seed(config.seed)
    train_idx, val_idx = _split(len(x), config.val_fraction if config.patience else 0.0, g)
    x_val, y_val = x[val_idx], y[val_idx].to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates each tensor in one pass: 2.9 ms per step instead of 25 ms
    # for RecNet's 4.8M parameters on this 2-core CPU, where the per-op default spent
    # ~40% of an audit in the optimiser (cProfile of one ObfNet-CNN audit).
    opt = torch.optim.Adam(params, lr=config.lr, fused=device.type in ("cpu", "cuda") or None)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sched = None
    if config.schedule == "onecycle" and steps_per_epoch:
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=WARMUP
        )
    result = FitResult()
    compiled = None
    steps = config.epochs * (len(train_idx) // config.batch_size)
    # a defence's objective (its penalty, its adversary's own steps) is never compiled
    if objective is None and compiles(model, device, steps, plain=forward is model):

        def step_loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            with autocast(device, config.precision):
                out = forward(xb)
            return loss_fn(out.float(), yb)

        # full batches only: the last, shorter batch of an epoch runs eagerly instead of compiling again
        compiled = torch.compile(step_loss, dynamic=False)
        # Inductor's C++ builder warns of a missing CUDA runtime on a CPU machine: not the user's concern
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    best_state, best_loss, stale = None, math.inf, 0
    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        desc=config.desc,
        disable=not config.progress,
        leave=False,
        unit="step",
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(1, config.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        if set_mode:
            set_mode(True)
        order = train_idx[torch.randperm(len(train_idx), generator=g)].to(x.device)
        # the loss is summed where it is computed and read once per epoch: reading it every step
        # would make a GPU wait for each step to finish before the next is queued
        total, count = torch.zeros((), device=device), 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb = as_float(x[idx].to(device, non_blocking=True))
            if config.shift:
                xb = random_shift(xb, config.shift, g)
            yb = as_float(y[idx].to(device, non_blocking=True))
            loss = None
            if compiled is not None and len(idx) == config.batch_size:
                try:
                    loss = compiled(xb, yb)
                    result.compiled = True
                except Exception as e:  # noqa: BLE001 - no C compiler, an unsupported op: train eagerly
                    log.warning("torch.compile failed, training eagerly from now on (%s)", _first_line(e))
                    _COMPILE_FAILED.append(_first_line(e))
                    compiled = None
            if loss is None:
                with autocast(device, config.precision):
                    out = forward(xb) if objective is None else objective(xb, yb)
                loss = loss_fn(out.float(), yb) if objective is None else out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.detach().float() * len(idx)
            count += len(idx)
            bar.update(1)
        seen += count
        entry = {"epoch": epoch, "train_loss": float(total) / max(count, 1)}
        if not math.isfinite(entry["train_loss"]):
            bar.close()
            raise ObfauditError(
                f"{config.desc}: training diverged (loss {entry['train_loss']} in epoch {epoch}); "
                f"lower the learning rate (now {config.lr:g})"
            )
        if len(val_idx):
            model.eval()
            if set_mode:
                set_mode(False)
            out = predict(forward, x_val, device=device)
            y_val = as_float(y_val)
            entry["val_loss"] = float(loss_fn(out, y_val))
            if metric:
                entry["val_metric"] = metric(out, y_val)
            # Classifiers stop on validation accuracy: their validation cross-entropy starts
            # rising (over-confidence) while accuracy still improves, and stopping on it cost
            # 2-5 points of test accuracy on the 4,000-image data. Others stop on the loss.
            score = -entry["val_metric"] if metric else entry["val_loss"]
            if score < best_loss - 1e-6:
                best_loss, stale = score, 0
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch = epoch
            elif sched is None or epoch > WARMUP * config.epochs:
                # a one-cycle rate rises over its first 30% of steps, and the validation score may
                # worsen while it does: early stopping counts from the peak on
                stale += 1
            if metric and STOP_WHEN_PERFECT and entry["val_metric"] >= 1.0:
                # a perfect hold-out cannot be beaten, so no later epoch would become the best: the
                # weights kept are these whatever follows (a ColorNet read the identity's attribute
                # perfectly after one epoch and trained 15 more before)
                result.stopped = "perfect"
        else:
            result.best_epoch = epoch
        entry["seconds"] = time.perf_counter() - t_epoch
        result.history.append(entry)
        bar.set_postfix({k: f"{v:.4f}" for k, v in entry.items() if k != "epoch"})
        log.info(
            "%s: epoch %d/%d %s",
            config.desc,
            epoch,
            config.epochs,
            " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k != "epoch"),
        )
        if config.patience and stale >= config.patience:
            result.stopped = "patience"
        if result.stopped:
            break
    bar.close()
    opt.zero_grad(set_to_none=True)  # free the last step's gradients
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if set_mode:
        set_mode(False)
    result.seconds = time.perf_counter() - t0
    result.epochs_run = len(result.history)
    result.samples_per_s = seen / max(result.seconds, 1e-9)
    best = result.history[result.best_epoch - 1] if result.history else {}
    result.train_loss = best.get("train_loss", math.nan)
    result.val_loss = best.get("val_loss", math.nan)
    result.val_metric = best.get("val_metric")
    return result


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def random_shift(x: torch.Tensor, pixels: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of ``x`` (N, C, H, W) by its own random offset of up to
    ``pixels`` in each direction, filling the uncovered border with zeros."""
    n, _, h, w = x.shape
    span = 2 * pixels + 1
    offset = torch.randint(0, span * span, (n,), generator=generator).to(x.device)
    padded = F.pad(x, (pixels, pixels, pixels, pixels))
    out = torch.empty_like(x)
    for k in offset.unique().tolist():
        rows = offset == k
        dy, dx = divmod(k, span)
        out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
    return out


def inference_batch(device: torch.device | str) -> int:
    """Images per forward pass when a network only evaluates (no gradients).

    On a CPU, 256: the activations of the study's convolutional networks then stay at or
    near glibc's mmap threshold (see :func:`obfaudit._io.keep_freed_memory`) and their buffers
    are reused, where batches of 1,000 were mapped, page-faulted and unmapped every time:
    InfNet-CNN on 10,000 Colored-MNIST images took 3.8 s in batches of 1,000 and 1.6 s in
    batches of 256, ObfNet-CNN(8) 1.2 s and 0.34 s (the same float32 values; MLPs unchanged).
    On a GPU, 4,096: fewer, fuller kernel launches.
    """
    return 4096 if torch.device(device).type == "cuda" else 256


@torch.no_grad()
def predict(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
) -> torch.Tensor:
    """Outputs of ``forward`` for every row of ``x``, in float32, on ``device``.

    A module is moved to ``device`` first (in place); a plain function must hold its
    modules there itself. ``batch_size`` defaults to :func:`inference_batch`.
    """
    device = torch.device(device)
    batch_size = batch_size or inference_batch(device)
    if isinstance(forward, nn.Module):
        forward.to(device)
    out = None
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size]
        batch = forward(as_float(xb.to(device)))
        out = fill_rows(out, batch, i, len(xb), len(x), batch.device)
    return out if out is not None else torch.empty(0)


def fill_rows(
    out: torch.Tensor | None,
    batch: torch.Tensor,
    start: int,
    rows: int,
    n: int,
    device: torch.device | str,
    *,
    error: type[ObfauditError] = ObfauditError,
) -> torch.Tensor:
    """Write ``batch``, the outputs for input rows ``start`` to ``start + rows``, into the float32
    result of ``n`` rows (made at the first batch, on ``device``) and return the result.

    Filling one tensor, where the batches used to be kept and then concatenated, holds the
    result once instead of twice: the adversary's 60,000 transformed proxies take 564 MB.
    A batch of another length or row shape than the first is refused with ``error`` (a slice
    assignment would broadcast it silently).
    """
    if batch.ndim == 0 or len(batch) != rows or (out is not None and batch.shape[1:] != out.shape[1:]):
        first = f" after {tuple(out.shape[1:])}" if out is not None else ""
        raise error(
            f"a network or transform gave {tuple(batch.shape)} for {rows} inputs{first}: "
            "it must give one output of one shape per input"
        )
    if out is None:
        out = torch.empty((n, *batch.shape[1:]), dtype=torch.float32, device=device)
    out[start : start + len(batch)] = batch
    return out


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of rows whose arg-max matches the label."""
    return float((logits.argmax(dim=1) == y).float().mean()) if len(y) else math.nan


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig) -> FitResult:
    """Cross-entropy training of a classifier (InfNet, ColorNet)."""
    return fit(model, x, y, F.cross_entropy, config, metric=accuracy)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients into the weights: the InfNet as ObfNet training sees it."""
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass(frozen=True)
class TrainingContext:
    """What a defence (:mod:`obfaudit.defences`) may build on before the obfuscator trains."""

    obfuscator: nn.Module
    """The network being trained (the invariance defence sends counterfactuals through it)."""
    z_shape: tuple[int, ...]
    """The shape of one sent tensor."""
    classes: int
    """Classes of the sensitive attribute (0 when the defence does not need it)."""
    device: torch.device
    seed: int
    steps_per_epoch: int


def train_obfnet(
    obfnet: nn.Module,
    infnet: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    *,
    infnet_dropout: bool = False,
    defence=None,
    attribute: torch.Tensor | None = None,
) -> FitResult:
    """Train ``obfnet`` to minimise the frozen ``infnet``'s cross-entropy on obfnet(x).

    InfNet's weights never receive a gradient. By default InfNet runs in eval mode; with
    ``infnet_dropout`` its dropout stays active during training, as in the reference Keras
    code (Keras does not switch dropout off for frozen layers inside ``fit``).

    A ``defence`` (:mod:`obfaudit.defences`) with a penalty adds it to the loss of every
    batch (and may train its own adversary beside, with its own optimiser); ``attribute``
    holds the training images' labels of the sensitive attribute when it needs them.
    """
    device = resolve_device(config.device)
    freeze(infnet).to(device)

    def forward(xb: torch.Tensor) -> torch.Tensor:
        return infnet(obfnet(xb))

    def set_mode(training: bool) -> None:
        infnet.train(training and infnet_dropout)

    if defence is None or not defence.has_penalty:
        return fit(obfnet, x, y, F.cross_entropy, config, forward=forward, metric=accuracy, set_mode=set_mode)
    if config.patience:
        # validation scores utility alone: stopping on it would keep the epoch before the defence
        # took hold; a defended ObfNet trains every epoch
        log.info("%s: early stopping off for the %s defence", config.desc, defence.name)
        config = replace(config, patience=None, val_fraction=0.0)
    if defence.needs_attribute and attribute is None:
        raise ObfauditError(
            f"the {defence.name} defence trains on the sensitive attribute's labels: none given"
        )
    # targets: digits, and the attribute beside them when the defence needs it (sliced together)
    targets = torch.stack([y, attribute], dim=1) if attribute is not None else y[:, None]
    defence.setup(
        TrainingContext(
            obfuscator=obfnet,
            z_shape=tuple(obfnet.output_shape),
            classes=int(attribute.max()) + 1 if attribute is not None else 0,
            device=device,
            seed=config.seed,
            steps_per_epoch=math.ceil(len(x) / config.batch_size),
        )
    )

    def objective(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        z = obfnet(xb)
        loss = F.cross_entropy(infnet(z).float(), yb[:, 0])
        extra = defence.penalty(xb, z, yb[:, 1] if yb.shape[1] > 1 else None)
        return loss if extra is None else loss + extra

    return fit(
        obfnet,
        x,
        targets,
        lambda out, yb: F.cross_entropy(out, yb[:, 0]),
        config,
        forward=forward,
        metric=lambda out, yb: accuracy(out, yb[:, 0]),
        set_mode=set_mode,
        objective=objective,
    )


def train_reconstructor(
    recnet: nn.Module, z: torch.Tensor, x: torch.Tensor, config: TrainConfig
) -> FitResult:
    """Pixel (MSE) training of a reconstruction network from transformed z to originals x."""
    if config.shift:
        raise ValueError("shift moves inputs but not targets: not for reconstruction networks")
    return fit(recnet, z, x, F.mse_loss, config)
