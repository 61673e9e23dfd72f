"""Where a run trains and in what precision: `resolve_device` and the autocast settings.

A device is ``cpu``, ``cuda`` or ``cuda:N``; ``auto`` (the command line's default) is CUDA when
torch sees a GPU. Precision is ``fp32`` (the default, and the only one whose results are
comparable across devices: kernels differ only in summation order, TF32 kept off), ``bf16``
(autocast; where the GPU has no bf16, ``fp16`` with a gradient scaler is the fallback a user
chooses). Torch is imported inside the functions: the command line checks names without it.
"""

from __future__ import annotations

import re

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICE_PATTERN = re.compile(r"^(cpu|cuda|cuda:\d+)$")


def check_device_name(device: object) -> str:
    """``device`` as a device name (cpu, cuda, cuda:N); ValueError otherwise."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    return device


def resolve_device(spec: str, *, device_count: int | None = None) -> str:
    """The device ``spec`` names on this machine: ``auto`` becomes ``cuda`` when a GPU is
    visible, else ``cpu``; ``cuda``/``cuda:N`` must exist (ValueError saying what is there).
    ``device_count`` overrides torch's count (tests of the placement logic)."""
    if spec != "auto":
        check_device_name(spec)
    if spec == "cpu":
        return "cpu"
    if device_count is None:
        import torch

        device_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if spec == "auto":
        return "cuda" if device_count > 0 else "cpu"
    if device_count == 0:
        raise ValueError(f"--device {spec}: torch sees no CUDA GPU here (is the CUDA build of torch installed?)")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= device_count:
        raise ValueError(f"--device {spec}: there is no GPU {index}; torch sees {device_count} "
                         f"(cuda:0..cuda:{device_count - 1})")
    return spec


def autocast_dtype(precision: str):
    """The autocast dtype of ``precision`` (None for fp32: no autocast)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
