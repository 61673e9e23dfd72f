"""Where workers train on GPUs: which GPU each local worker is pinned to, and Ray's share of one.

A local worker is pinned to one GPU by its own ``CUDA_VISIBLE_DEVICES`` (it then trains on
``cuda``, which is that GPU); ``--trials-per-gpu K`` gives each GPU K workers, since a tiny
network leaves a GPU mostly idle. Ray actors reserve 1/K of a GPU each and Ray pins them the
same way. Pure but for torch's GPU count, which tests replace (``device_count``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tinyscale.train.device import check_device_name, resolve_device


@dataclass(frozen=True)
class Placement:
    """Where local workers train: on the CPU (``gpus`` empty), or one worker per entry of
    ``gpus``, each pinned to that GPU (torch's index in this process) and told ``device``."""

    device: str = "cpu"
    gpus: tuple[int, ...] = ()

    def visible_devices(self, parent: str | None = None) -> tuple[str, ...]:
        """Each worker's CUDA_VISIBLE_DEVICES. ``parent`` is this process's own: torch's indices
        count the GPUs it lists, so a worker must be given the name found there."""
        names = [name.strip() for name in parent.split(",")] if parent else None
        return tuple(names[g] if names and g < len(names) else str(g) for g in self.gpus)


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def place_local(device: str = "cpu", gpus: tuple[int, ...] | None = None, trials_per_gpu: int | None = None, *,
                device_count: int | None = None) -> Placement:
    """Where ``--device/--gpus/--trials-per-gpu`` put the local workers (ValueError, one line,
    for a GPU that is not there). ``cpu`` (and ``auto`` without a GPU) is the CPU; ``cuda`` and
    ``auto`` use every GPU torch sees, or those ``gpus`` lists; ``cuda:N`` only GPU N. Each GPU
    gets ``trials_per_gpu`` workers (default 1), taken in turn so that fewer trials than workers
    still spread over the GPUs. ``device_count`` stands in for torch's count (tests)."""
    check_gpu_options(gpus, trials_per_gpu)
    if device != "auto":
        check_device_name(device)
    gpus_asked = gpus is not None or trials_per_gpu is not None
    if device == "cpu":
        if gpus_asked:
            raise ValueError("--gpus and --trials-per-gpu place trials on GPUs; --device cpu trains on the CPU")
        return Placement()
    count = _gpu_count() if device_count is None else device_count
    if count == 0:
        if device == "auto" and not gpus_asked:
            return Placement()
        option = (f"--device {device}" if device != "auto" else
                  f"--gpus {_listed(gpus)}" if gpus is not None else "--trials-per-gpu")
        raise ValueError(f"{option}: torch sees no CUDA GPU here (is the CUDA build of torch installed?)")
    if device.startswith("cuda:"):
        if gpus is not None:
            raise ValueError(f"--device {device} names one GPU and --gpus several: give one of them")
        gpus = (int(resolve_device(device, device_count=count).split(":")[1]),)
    elif gpus is None:
        gpus = tuple(range(count))
    missing = [g for g in gpus if g >= count]
    if missing:
        raise ValueError(f"--gpus {_listed(gpus)}: there is no GPU {missing[0]}; torch sees {count} "
                         f"({_listed(range(count))})")
    # One index per worker: GPU a, GPU b, ..., then again (--trials-per-gpu times).
    return Placement("cuda", tuple(g for _ in range(trials_per_gpu or 1) for g in gpus))


def _listed(gpus) -> str:
    return ",".join(map(str, gpus))


def check_gpu_options(gpus: tuple[int, ...] | None, trials_per_gpu: int | None) -> None:
    """ValueError for a malformed ``--gpus`` list or ``--trials-per-gpu`` count."""
    if gpus is not None:
        if not gpus or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
            raise ValueError(f"--gpus must list GPU indices (0,1,...), got {gpus!r}")
        if len(set(gpus)) != len(gpus):
            raise ValueError(f"--gpus lists a GPU twice ({_listed(gpus)}); "
                             "several trials per GPU: --trials-per-gpu K")
    if trials_per_gpu is not None and (isinstance(trials_per_gpu, bool) or not isinstance(trials_per_gpu, int)
                                       or not 1 <= trials_per_gpu <= MAX_TRIALS_PER_GPU):
        raise ValueError(f"--trials-per-gpu must be an integer from 1 to {MAX_TRIALS_PER_GPU}, got {trials_per_gpu!r}")


MAX_TRIALS_PER_GPU = 64  # each worker holds a CUDA context (~0.5 GB): more only run out of memory


def check_ray_device(device: str, trials_per_gpu: int | None) -> None:
    """ValueError for ``--device/--trials-per-gpu`` Ray cannot follow, whatever its cluster."""
    check_gpu_options(None, trials_per_gpu)
    if device != "auto":
        check_device_name(device)
    if device.startswith("cuda:"):
        raise ValueError(f"--device {device}: Ray chooses each trial's GPU; give --device cuda")
    if device == "cpu" and trials_per_gpu is not None:
        raise ValueError("--trials-per-gpu places trials on GPUs; --device cpu trains on the CPU")


def ray_gpu_share(device: str, trials_per_gpu: int | None, cluster_gpus: float) -> tuple[str, float]:
    """(the device Ray trials are told, the GPUs each actor reserves) for ``--device`` on a Ray
    cluster with ``cluster_gpus`` GPUs: 1/K of a GPU with ``--trials-per-gpu K``; Ray pins each
    actor to its GPU by CUDA_VISIBLE_DEVICES, so the trial's device is ``cuda``."""
    check_ray_device(device, trials_per_gpu)
    if device == "cpu" or (device == "auto" and not cluster_gpus and trials_per_gpu is None):
        return "cpu", 0.0
    if not cluster_gpus:
        raise ValueError(f"{'--trials-per-gpu' if device == 'auto' else '--device ' + device}: "
                         "the Ray cluster has no GPU")
    return "cuda", 1.0 / (trials_per_gpu or 1)


def check_placement(kind: str, workers: int | None, device: str = "cpu", gpus: tuple[int, ...] | None = None,
                    trials_per_gpu: int | None = None) -> Placement | None:
    """Validate ``--device/--gpus/--trials-per-gpu`` with the workers asked for, before anything
    runs: the local workers' `Placement`, or None for Ray (whose GPUs are checked when it starts)."""
    if kind == "ray":
        if gpus is not None:
            raise ValueError("--gpus is for the local executor; Ray places trials on the cluster's GPUs "
                             "(--trials-per-gpu K: 1/K of a GPU each)")
        check_ray_device(device, trials_per_gpu)
        return None
    placement = place_local(device, gpus, trials_per_gpu)
    if placement.gpus and workers is not None and workers != len(placement.gpus):
        raise ValueError(f"--workers {workers}: on GPUs there is one worker per GPU and trial slot "
                         f"({len(placement.gpus)} here: --gpus x --trials-per-gpu); leave --workers out")
    return placement
