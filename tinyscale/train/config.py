"""How one recipe is trained (`TrainConfig`) and which of its settings make results comparable.

Torch-free: the study's plan, the result stores and the command line read these settings
without loading the trainer.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

from tinyscale.train.device import PRECISIONS, check_device_name

OPTIMIZERS = ("sgd", "rmsprop", "rmsprop-tf", "adamw")
# "cosine": warm-up, then cosine decay to 0 at the last step. "wsd" (warm-up, stable, decay): warm-up,
# the constant lr, then a linear decay to 0 over the last ``decay_fraction`` of the steps. Under
# wsd every step before the decay is the same whatever the run's length, so a run saved where its
# decay starts (its trunk) can be continued into a longer one: a study in rungs continues its
# promoted runs instead of retraining them (`tinyscale.train.trainer.train_recipe`).
LR_SCHEDULES = ("cosine", "wsd")


@dataclass(frozen=True)
class TrainConfig:
    """How one recipe is trained. ``warmup`` is in steps; the lr then decays by cosine to 0."""

    steps: int = 300
    batch_size: int = 64
    # RMSProp with TF EfficientNet's decay 0.9, momentum 0.9, eps 1e-3 (PyTorch's update rule unless
    # optimizer="rmsprop-tf") at lr 0.0015 learned fastest in a few hundred steps:
    # Fashion-MNIST, r=1 w=0.5 d=0.5, 150 steps: 79 % held-out vs 67-71 % for the best SGD lr.
    lr: float = 0.0015
    # "rmsprop" (PyTorch's), "rmsprop-tf" (TensorFlow's, as EfficientNet was trained: `TFRMSprop`),
    # "sgd" (Nesterov momentum) or "adamw"
    optimizer: str = "rmsprop"
    momentum: float = 0.9
    weight_decay: float = 5e-5
    warmup: int | None = None  # warm-up steps; None = 10 % of the steps
    lr_schedule: str = "cosine"  # see LR_SCHEDULES
    # wsd: the decay's share of the steps. At least 0.1 so the steps the training loss is read
    # over (the last 10 %) and a tail average lie in it, after the trunk a continuation starts from.
    decay_fraction: float = 0.2
    label_smoothing: float = 0.0
    # Light augmentation, off by default: within a few hundred steps it slowed convergence
    # (Fashion-MNIST, 150 steps: 67 % held-out accuracy without, 55 % with translate+flip+
    # smoothing+dropout), and brief trials must rank recipes, not regularise them.
    translate: int = 0  # random translation by up to this many pixels (zero-padded), 0 = off
    flip: bool = False  # random horizontal flips
    dropout: float = 0.0
    drop_path_rate: float = 0.0  # stochastic depth hurts more than it helps in a few hundred steps
    # Residual branches start at zero (their last BN scale = 0), so every skip block starts as
    # the identity and depth costs nothing at step 0 (EfficientNet.zero_init_residual_branches).
    zero_init_residual: bool = False
    # The model's TF-style BN momentum (0.01) leaves running statistics near their initial
    # values after a few hundred steps, so held-out accuracy would measure the statistics,
    # not the network; brief training uses PyTorch's usual 0.1.
    bn_momentum: float = 0.1
    # Before evaluation, BN statistics are re-estimated as exact averages over this many
    # training images (no augmentation, no gradient): after a brief, fast-moving run the
    # running averages lag the final weights and held-out accuracy would be noise.
    bn_calibration_images: int = 1024
    # Uniform average of the weights over the last this fraction of the steps, evaluated instead
    # of the final weights (tail averaging, as SWA does; the BN statistics are re-estimated for
    # the averaged weights by the calibration above). 0 = the final weights.
    average_tail: float = 0.0
    eval_batch_size: int = 500
    threads: int | None = None  # torch intra-op threads; None leaves torch's setting alone
    channels_last: bool = True
    # Pointwise and depthwise convolutions on tiny maps computed as the equivalent matrix
    # products and gathers (tinyscale/space/smallmap.py): same values up to float summation order,
    # 1.5-2x faster steps at the study's resolutions. Off only to measure the difference.
    small_map_kernels: bool = True
    # Where the run trains (a resolved name: cpu, cuda, cuda:N; `tinyscale.train.device`) and in
    # what precision (fp32, or bf16/fp16 autocast). Results on another device agree up to float
    # summation order, as between thread counts, so the device is a runtime setting; the
    # precision changes what is trained, so it is compared when a study resumes.
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 (BatchNorm cannot train on one image), got {self.batch_size}")
        for name in ("warmup", "translate"):
            if name == "warmup" and self.warmup is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (isinstance(self.average_tail, (int, float)) and 0 <= self.average_tail <= 1):
            raise ValueError(f"average_tail must be a fraction of the steps in [0, 1], got {self.average_tail!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not (isinstance(self.decay_fraction, (int, float)) and 0.1 <= self.decay_fraction <= 0.5):
            raise ValueError(f"decay_fraction must be a fraction of the steps in [0.1, 0.5], got {self.decay_fraction!r}")
        if self.lr_schedule == "wsd" and self.average_tail > self.decay_fraction:
            raise ValueError(f"average_tail {self.average_tail} must lie within the decay (decay_fraction "
                             f"{self.decay_fraction}) under lr_schedule wsd: a continued run averages only after its trunk")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer, got {self.threads!r}")
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def warmup_steps(self) -> int:
        return self.steps // 10 if self.warmup is None else min(self.warmup, self.steps)

    @property
    def trunk_steps(self) -> int | None:
        """Under wsd, the step where the decay starts: the trunk a longer run with the same
        warm-up can continue from. None under cosine (every step depends on the length)."""
        if self.lr_schedule != "wsd":
            return None
        return self.steps - max(1, round(self.decay_fraction * self.steps))

    def with_(self, **changes) -> TrainConfig:
        return TrainConfig(**{**asdict(self), **changes})

    @classmethod
    def from_study(cls, config) -> TrainConfig:
        """The trainer settings a `StudyConfig` asks for (steps, batch size, and ``extra``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config.extra) - known)
        if unknown:
            raise ValueError(f"unknown trainer setting(s) in the study's extra: {', '.join(unknown)}")
        settings = {k: v for k, v in config.extra.items() if k in known and k != "threads"}
        return cls(steps=config.steps, batch_size=config.batch_size, **settings)


# Settings that change how fast a run goes, not what it trains (results agree up to float
# summation order, as between thread counts): result stores leave them out when they check that
# stored runs and new runs are comparable, so a study started before a speed-up still resumes.
RUNTIME_SETTINGS = frozenset({"threads", "small_map_kernels", "device"})

# Settings added after results were first stored, each with the value that trains as versions
# without it did: a stored setting list (a study's trainer, a comparison's or fidelity check's
# budget) that lacks one is read as having this value, so older results still resume.
LATER_SETTINGS = {"zero_init_residual": False, "average_tail": 0.0, "precision": "fp32", "lr_schedule": "cosine",
                  "decay_fraction": 0.2}


def comparable_settings(config: TrainConfig) -> dict:
    """Every trainer setting a result depends on (`RUNTIME_SETTINGS` left out), as JSON values."""
    return json.loads(json.dumps({k: v for k, v in asdict(config).items() if k not in RUNTIME_SETTINGS}))


def setting_changes(stored: dict, config: TrainConfig) -> list[str]:
    """``key: stored then, new now`` for each comparable setting that differs from ``stored``
    (settings recorded by `comparable_settings`, or by an older version that recorded more)."""
    now = comparable_settings(config)
    stored = {k: v for k, v in {**LATER_SETTINGS, **stored}.items() if k not in RUNTIME_SETTINGS}
    return [f"{k}: {stored.get(k)!r} then, {now.get(k)!r} now"
            for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)]
