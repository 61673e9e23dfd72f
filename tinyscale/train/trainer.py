"""Brief training of one recipe and evaluation on the held-out split.

The same trainer serves the study and the strategy comparison, so it depends on nothing but a
recipe, an `ImageData`, a `TrainConfig` and a seed, and is deterministic for a given seed and
thread count (weights from ``torch.manual_seed``, data order and augmentation from their own
seeded generators).

Fast on CPU: the network runs channels-last; the whole data order is one ``randperm`` per
epoch drawn up front; each step gathers a uint8 batch, augments it with batched tensor ops
(random translation as one gather, flips as one ``where``), and normalises it — no per-sample
Python, no decoding in the loop. Evaluation runs under ``inference_mode`` in large batches.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from tinyscale.data.datasets import ImageData, resize_images
from tinyscale.space.model import build_model
from tinyscale.space.recipe import Recipe
from tinyscale.space.smallmap import use_small_map_kernels
from tinyscale.train.checkpoint import RunKey, TrunkKey, load_progress, load_trunk, save_progress, save_trunk
from tinyscale.train.heartbeat import heartbeat_path, write_heartbeat
from tinyscale.train.config import TrainConfig
from tinyscale.train.device import autocast_dtype

SYNC_EVERY = 25  # on a GPU, steps between reads of the training loss (each read waits for the queue)
# Seconds of training between saves of a run's progress (when it is given a file for it): a kill
# loses at most this much, and a save costs little (B0 with its optimizer: 49 MB in 0.15 s).
PROGRESS_EVERY = 300.0
# Seconds between a run's heartbeats (its step, beside its progress file: what the progress bar
# shows of a run in flight; `tinyscale.train.heartbeat.write_heartbeat`).
HEARTBEAT_EVERY = 5.0

@dataclass(frozen=True)
class TrainResult:
    """What one training run measured. ``failed`` holds the reason when the run diverged."""

    accuracy: float | None
    loss: float | None  # held-out cross-entropy (no smoothing)
    steps: int
    images_seen: int
    train_seconds: float
    eval_seconds: float
    images_per_second: float
    train_loss: float | None = None  # mean training loss over the last 10 % of steps
    failed: str | None = None
    # The step this run continued from (a saved trunk, `tinyscale.train.checkpoint`); 0 = from
    # scratch. ``images_seen`` and ``train_seconds`` count only the steps trained here.
    start_step: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, config: TrainConfig) -> float:
    """Linear warm-up over ``warmup`` steps, then (cosine) cosine decay to zero at ``steps``, or
    (wsd) the constant lr until `TrainConfig.trunk_steps` and a linear decay to zero at ``steps``."""
    warmup = config.warmup_steps
    trunk = config.trunk_steps
    if trunk is not None and step >= trunk:
        return config.lr * (config.steps - step) / (config.steps - trunk)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if trunk is not None:
        return config.lr
    span = max(1, config.steps - warmup)
    return 0.5 * config.lr * (1.0 + math.cos(math.pi * (step - warmup) / span))


def data_order(n: int, steps: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(steps, batch) sample indices: consecutive epochs of seeded permutations."""
    total = steps * batch_size
    epochs = -(-total // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(epochs)])[:total].view(steps, batch_size)


class BatchMaker:
    """Turns sample indices into a normalised, augmented float batch (channels-last NCHW)."""

    def __init__(self, images: torch.Tensor, mean, std, *, translate: int = 0, flip: bool = False,
                 generator: torch.Generator | None = None, resize_to: int | None = None) -> None:
        # The images stay as given (N, C, H, W: possibly a read-only map of the decoded cache,
        # shared by every worker); each batch is gathered and made channels-last (NHWC) here,
        # so no second copy of the split is held.
        # ``resize_to``: each batch is resized as it is gathered (`ImageData.for_training`).
        self.images, self.resize_to = images, resize_to
        self.size = resize_to or images.shape[2]
        self.translate, self.flip, self.generator = translate, flip, generator
        device = self.images.device
        self.scale = (1.0 / (255.0 * torch.tensor(std))).view(1, 1, 1, 3).to(device)
        self.shift = (torch.tensor(mean) / torch.tensor(std)).view(1, 1, 1, 3).to(device)
        self.arange = torch.arange(self.size, device=device)

    def __call__(self, idx: torch.Tensor, augment: bool) -> torch.Tensor:
        # Indices and random draws come from CPU generators (the same streams on every device).
        idx = idx.to(self.images.device)
        x = self.images[idx]
        if self.resize_to is not None:
            x = resize_images(x, self.resize_to)
        x = x.permute(0, 2, 3, 1).contiguous()  # (B, H, W, 3) uint8
        if augment and (self.translate or self.flip):
            b = len(idx)
            rows = cols = self.arange.expand(b, -1)
            if self.translate:
                p = self.translate
                x = F.pad(x, (0, 0, p, p, p, p))  # zero border on H and W
                off = torch.randint(0, 2 * p + 1, (2, b, 1), generator=self.generator).to(x.device)
                rows, cols = rows + off[0], cols + off[1]
            if self.flip:
                flipped = (torch.rand(b, 1, generator=self.generator) < 0.5).to(x.device)
                cols = torch.where(flipped, cols.flip(1), cols)
            x = x[torch.arange(b, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
        x = x.float().mul_(self.scale).sub_(self.shift)
        return x.permute(0, 3, 1, 2)  # NCHW view of NHWC memory = channels_last


class TFRMSprop(torch.optim.Optimizer):
    """RMSProp as TensorFlow 1's ``RMSPropOptimizer`` computes it, the optimizer EfficientNet and
    TinyNet were trained with. PyTorch's ``RMSprop`` differs in three ways that matter most in a
    short run: its mean square starts at 0 (TF: 1), so the first updates are about
    lr / sqrt(1 - alpha) per weight whatever the gradient's size; its eps is added outside the
    square root (TF: inside, so eps = 1e-3 bounds the denominator below by 0.03, not 0.001); and
    it applies lr after the momentum buffer (TF: lr enters the buffer, so a falling lr fades
    updates in smoothly). Per weight, with L2 ``weight_decay`` folded into the gradient g::

        ms  <- alpha * ms + (1 - alpha) * g^2          (ms starts at 1)
        mom <- momentum * mom + lr * g / sqrt(ms + eps)
        w   <- w - mom
    """

    def __init__(self, params, lr: float, alpha: float = 0.9, eps: float = 1e-3, momentum: float = 0.9,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps, "momentum": momentum,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            for p in params:
                if not self.state[p]:
                    self.state[p]["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            square_avg = [self.state[p]["square_avg"] for p in params]
            buf = [self.state[p]["momentum_buffer"] for p in params]
            alpha = group["alpha"]
            # Fused per-tensor lists: one kernel launch per operation, not per parameter tensor.
            torch._foreach_mul_(square_avg, alpha)
            torch._foreach_addcmul_(square_avg, grads, grads, value=1.0 - alpha)
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_mul_(buf, group["momentum"])
            torch._foreach_addcdiv_(buf, grads, denom, value=group["lr"])
            torch._foreach_sub_(params, buf)
        return loss


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on BN parameters and biases (all 1-D tensors), as in the reference code.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    if config.optimizer == "rmsprop-tf":
        return TFRMSprop(groups, lr=config.lr, alpha=0.9, eps=1e-3, momentum=config.momentum)
    return torch.optim.RMSprop(groups, lr=config.lr, alpha=0.9, eps=1e-3, momentum=config.momentum)


def calibrate_batchnorm(model: torch.nn.Module, batches: BatchMaker, n: int, batch_size: int) -> None:
    """Replace BN running statistics by their exact average over ``n`` training images drawn
    by a fixed-seed permutation (folder datasets are class-sorted: the first ``n`` would
    describe the first classes only, and batches should mix classes as training batches do)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if n <= 0 or not bns:
        return
    model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = the exact mean over the batches seen
        m.train()
    if n > 1 and n % batch_size == 1:
        n -= 1  # a last batch of one image would stop BatchNorm (train mode) with an error
    with torch.no_grad():
        spread = torch.randperm(len(batches.images), generator=torch.Generator().manual_seed(0))[:n]
        for start in range(0, n, batch_size):
            model(batches(spread[start:start + batch_size], augment=False))
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.eval()


def evaluate(model: torch.nn.Module, batches: BatchMaker, labels: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) on every sample, in eval mode."""
    model.eval()
    correct = 0
    loss_sum = 0.0
    n = len(labels)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(n, start + batch_size))
            logits = model(batches(idx, augment=False))
            y = labels[idx.to(labels.device)]
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    return correct / n, loss_sum / n


def train_recipe(recipe: Recipe, data: ImageData, config: TrainConfig, seed: int, *,
                 on_trained=None, resume_from: str | os.PathLike | None = None,
                 save_trunk: str | os.PathLike | None = None, progress: str | os.PathLike | None = None,
                 progress_every: float | None = None) -> TrainResult:
    """Train ``recipe`` on ``data`` for ``config.steps`` steps; evaluate on the held-out split.
    A NaN/inf training loss stops the run and returns it as failed.

    ``on_trained(model)``, if given, receives the trained module after evaluation (in eval
    mode) unless the run failed: the export stage uses it to keep the weights.

    Under ``lr_schedule="wsd"``: ``save_trunk`` names a file to keep this run's trunk in (its
    state where the decay starts), ``resume_from`` the trunk of a shorter run of the same recipe,
    seed and settings to continue from (`tinyscale.train.checkpoint`; one that does not match is
    not used, and the run trains from scratch, to the same result).

    ``progress`` names a file to keep the run's whole state in every ``progress_every`` seconds
    of training (default `PROGRESS_EVERY`); the same run started again (same recipe, seed and
    settings) continues from it, to the result it would have reached uninterrupted. Its
    ``train_seconds`` and ``images_seen`` then count every attempt. Whoever stores the result
    removes the file. The run also says every `HEARTBEAT_EVERY` seconds how far it has come, in a
    small file beside it (`tinyscale.train.heartbeat.heartbeat_path`), for the progress bar.
    """
    if recipe.num_classes != data.num_classes:
        raise ValueError(f"the recipe has {recipe.num_classes} classes, the data {data.num_classes}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        # fp32 stays fp32 (TF32 would change results, not only their summation order); the
        # fastest convolution algorithms for each shape are chosen once per network.
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    order_gen = torch.Generator().manual_seed(seed + 1)
    aug_gen = torch.Generator().manual_seed(seed + 2)

    # The uint8 images move to the device once per run; batches are gathered and normalised there.
    train_images, val_images, resize_to = data.for_training(recipe.resolution)
    train_images, val_images = train_images.to(device), val_images.to(device)
    mean, std = data.mean_std()
    train_batches = BatchMaker(train_images, mean, std, translate=config.translate, flip=config.flip,
                               generator=aug_gen, resize_to=resize_to)
    val_batches = BatchMaker(val_images, mean, std, resize_to=resize_to)
    order = data_order(len(train_images), config.steps, config.batch_size, order_gen)
    labels = data.train_labels.to(device)

    model = build_model(recipe, dropout=config.dropout, drop_path_rate=config.drop_path_rate)
    if config.zero_init_residual:
        model.zero_init_residual_branches()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = config.bn_momentum
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # The small-map kernels were written for CPU caches; GPUs run ordinary convolutions.
    use_small_map_kernels(model, config.small_map_kernels and not on_gpu)
    opt = _optimizer(model, config)
    cast = autocast_dtype(config.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    trunk_key = TrunkKey.of(recipe.to_dict(), seed, config) if config.trunk_steps is not None else None
    run_key = RunKey.of(recipe.to_dict(), seed, config) if progress is not None else None
    progress_every = PROGRESS_EVERY if progress_every is None else progress_every
    start_step = resume_step = 0
    earlier_seconds = 0.0  # training time of the attempts before a continued one
    tail_losses: list[torch.Tensor] = []
    averaged: list[torch.Tensor] | None = None
    n_averaged = 0
    saved = load_progress(progress, run_key, config.steps) if run_key is not None else None
    if saved is None and trunk_key is not None:
        saved = load_trunk(resume_from, trunk_key, config.trunk_steps)
        start_step = 0 if saved is None else saved["step"]
    if saved is not None:
        resume_step = saved["step"]
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        scaler.load_state_dict(saved["scaler"])
        aug_gen.set_state(saved["augment_rng"])
        torch.set_rng_state(saved["torch_rng"])
        if on_gpu and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"])
        if "run" in saved:  # a run's progress: where it had started, and its averages so far
            start_step, earlier_seconds = saved["run"]["start_step"], saved["run"]["seconds"]
            n_averaged = saved["run"]["n_averaged"]
            tail_losses = [torch.tensor(v, device=device) for v in saved["run"]["tail_losses"]]
            averaged = None if saved.get("averaged") is None else [t.to(device) for t in saved["averaged"]]
    model.train()
    tail_start = config.steps - max(1, config.steps // 10)
    params = [p.detach() for p in model.parameters()]  # views of the weights the optimizer updates
    average_start = config.steps - max(1, round(config.average_tail * config.steps)) if config.average_tail else None
    failed = None
    steps_done = resume_step
    heartbeat = heartbeat_path(progress) if progress is not None else None
    t0 = last_save = last_beat = time.perf_counter()
    if heartbeat is not None:
        write_heartbeat(heartbeat, resume_step, config.steps)
    for step in range(resume_step, config.steps):
        if save_trunk is not None and trunk_key is not None and step == config.trunk_steps:
            _save_trunk(save_trunk, trunk_key, step, model, opt, scaler, aug_gen, on_gpu)
        if run_key is not None and step > resume_step and time.perf_counter() - last_save >= progress_every:
            _save_progress(progress, run_key, step, model, opt, scaler, aug_gen, on_gpu, {
                "start_step": start_step, "seconds": earlier_seconds + time.perf_counter() - t0,
                "n_averaged": n_averaged, "tail_losses": [float(v) for v in tail_losses]}, averaged)
            last_save = time.perf_counter()
        if heartbeat is not None and time.perf_counter() - last_beat >= HEARTBEAT_EVERY:
            write_heartbeat(heartbeat, step, config.steps)
            last_beat = time.perf_counter()
        lr = lr_at(step, config)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = order[step]
        x = train_batches(idx, augment=True)
        if not config.channels_last:
            x = x.contiguous()
        with torch.autocast(device.type, dtype=cast, enabled=cast is not None):
            loss = F.cross_entropy(model(x), labels[idx.to(device)], label_smoothing=config.label_smoothing)
        # On CPU the step has already run, so reading the loss costs nothing; on a GPU it would
        # wait for the queue every step, so it is read every SYNC_EVERY steps and at the end.
        if not on_gpu or (step + 1) % SYNC_EVERY == 0 or step + 1 == config.steps:
            value = loss.item()
            if not math.isfinite(value):
                where = f"by step {step + 1}" if on_gpu else f"at step {step + 1}"
                failed = f"training loss became {value} {where} of {config.steps} (lr {lr:.3g})"
                break
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        steps_done = step + 1
        if average_start is not None and step >= average_start:
            with torch.no_grad():
                n_averaged += 1
                if averaged is None:
                    averaged = [p.clone() for p in params]
                else:  # running mean: avg += (w - avg) / n
                    torch._foreach_lerp_(averaged, params, 1.0 / n_averaged)
        if step >= tail_start:
            tail_losses.append(loss.detach())
    train_seconds = earlier_seconds + time.perf_counter() - t0
    if heartbeat is not None:  # trained: what is left is the evaluation
        write_heartbeat(heartbeat, steps_done, config.steps)
    images_seen = max(0, steps_done - start_step) * config.batch_size
    ips = images_seen / train_seconds if train_seconds > 0 else 0.0
    train_loss = float(torch.stack(tail_losses).mean()) if tail_losses else None
    if failed:
        return TrainResult(None, None, steps_done, images_seen, train_seconds, 0.0, ips, train_loss, failed,
                           start_step)

    if averaged is not None:
        with torch.no_grad():
            torch._foreach_copy_(params, averaged)
    t1 = time.perf_counter()
    calibrate_batchnorm(model, BatchMaker(train_images, mean, std, resize_to=resize_to), min(config.bn_calibration_images, len(train_images)),
                        config.eval_batch_size)
    accuracy, val_loss = evaluate(model, val_batches, data.val_labels, config.eval_batch_size)
    eval_seconds = time.perf_counter() - t1
    if not math.isfinite(val_loss):
        failed = f"held-out loss is {val_loss} after {steps_done} steps"
    elif on_trained is not None:
        # The receiver (export: ONNX, weights) sees the network as built: ordinary convolutions,
        # on the CPU.
        on_trained(use_small_map_kernels(model, False).to("cpu").eval())
    return TrainResult(accuracy, val_loss if math.isfinite(val_loss) else None, steps_done, images_seen,
                       train_seconds, eval_seconds, ips, train_loss, failed, start_step)


def _state(model, opt, scaler, aug_gen: torch.Generator, on_gpu: bool) -> dict:
    """What every step after this one depends on, besides the data order (from the seed)."""
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
            "augment_rng": aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if on_gpu else None}


def _save_trunk(path, key: TrunkKey, step: int, model, opt, scaler, aug_gen: torch.Generator, on_gpu: bool) -> None:
    """Keep the state after ``step`` steps (serialised now; `load_trunk` maps it to the CPU, so
    any device can continue from it)."""
    save_trunk(path, key, step, _state(model, opt, scaler, aug_gen, on_gpu))


def _save_progress(path, key: RunKey, step: int, model, opt, scaler, aug_gen: torch.Generator, on_gpu: bool,
                   run: dict, averaged: list[torch.Tensor] | None) -> None:
    """Keep the run's whole state after ``step`` steps: the trunk's, plus where it started (a
    trunk's step), its training seconds so far and its tail average and losses (``run``)."""
    save_progress(path, key, step, {**_state(model, opt, scaler, aug_gen, on_gpu), "run": run,
                                     "averaged": averaged})
