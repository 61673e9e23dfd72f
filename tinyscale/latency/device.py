"""What a latency was measured on (`DeviceProfile`): CPU model, OS, engine and its version,
threads and batch. A table file carries its profile, so a table measured on the deployment box
can predict here, and a measurement here is taken only where the profiles agree."""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass

from tinyscale.latency.timing import check_count

FORMAT_VERSION = 1  # of the table file (`tinyscale.latency.table`); its profile records it too
FAMILY = "efficientnet-b0"  # the architecture family tables are measured for
ENGINES = ("torch", "onnxruntime")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what `platform` knows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    return engine


def engine_version(engine: str) -> str:
    check_engine(engine)
    if engine == "torch":
        import torch

        return torch.__version__
    import onnxruntime

    return onnxruntime.__version__


@dataclass(frozen=True)
class DeviceProfile:
    """What a latency was measured on. Two profiles with equal `device_key` answer for the same
    device and setting (same CPU model, OS, engine and version, threads, batch)."""

    cpu: str
    machine: str
    system: str
    engine: str
    engine_version: str
    threads: int
    batch: int
    family: str = FAMILY
    format_version: int = FORMAT_VERSION

    @classmethod
    def current(cls, engine: str = "torch", threads: int = 1, batch: int = 1) -> DeviceProfile:
        check_count("threads", threads, 1)
        check_count("batch", batch, 1)
        return cls(cpu=cpu_model(), machine=platform.machine() or "unknown", system=platform.system() or "unknown",
                   engine=check_engine(engine), engine_version=engine_version(engine), threads=threads, batch=batch)

    @property
    def device_key(self) -> tuple:
        return (self.cpu, self.machine, self.system, self.engine, self.engine_version, self.threads, self.batch)

    def same_device(self, other: DeviceProfile) -> bool:
        return self.device_key == other.device_key

    def describe(self) -> str:
        return (f"{self.cpu} ({self.machine}, {self.system}), {self.engine} {self.engine_version}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}, batch {self.batch}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "profile") -> DeviceProfile:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: 'profile' must be an object")
        missing = [k for k in ("cpu", "machine", "system", "engine", "engine_version", "threads", "batch",
                               "family", "format_version") if k not in data]
        if missing:
            raise ValueError(f"{where}: the profile lacks {', '.join(repr(k) for k in missing)}")
        if data["family"] != FAMILY:
            raise ValueError(f"{where}: measured for architecture family {data['family']!r}; "
                             f"tinyscale predicts {FAMILY!r}")
        try:
            return cls(cpu=str(data["cpu"]), machine=str(data["machine"]), system=str(data["system"]),
                       engine=check_engine(data["engine"]), engine_version=str(data["engine_version"]),
                       threads=check_count("threads", data["threads"], 1),
                       batch=check_count("batch", data["batch"], 1),
                       family=data["family"], format_version=data["format_version"])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
