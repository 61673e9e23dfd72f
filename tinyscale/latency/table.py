"""The device's latency table (`LatencyTable`): per-part latencies of one device profile and
the calibration from their sum to whole networks. Answers are microseconds.

A network's latency is predicted by looking up each of its parts by key and summing, then
correcting the sum (`tinyscale.latency.calibration`). A part that is not in the table is
**estimated** from the nearest measured parts of the same role, kind, kernel, stride and skip
(distance in log side, log mid and log out channels) by a local fit a + b·MACs (a fixed cost
per call plus a cost per MAC: small maps are dominated by the first), and the prediction says
how many parts were estimated. `LatencyTable.fill` measures the exact parts of given recipes
instead (lazy, FBNet's exact table) when the device is at hand.

The table file (profile + entries + calibration, JSON, `FORMAT_VERSION`) is portable:
`tinyscale latency-table --out device.json` on the deployment box, `--latency-table device.json` here.
A file of another architecture family, another format version, truncated or missing keys is
refused with a `ValueError` that says which.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

from tinyscale.latency.calibration import Calibration, CalibrationPoint
from tinyscale.latency.device import FORMAT_VERSION, DeviceProfile
from tinyscale.latency.measure import Measurer
from tinyscale.latency.parts import Part, recipe_parts
from tinyscale.latency.timing import LatencyStats, check_count
from tinyscale.limits import MAX_BATCH, MAX_JSON_BYTES, MAX_LATENCY_US, MAX_THREADS, check_number, is_exact_int
from tinyscale.space.recipe import Recipe
from tinyscale.storage import loads_json, read_bounded, write_text_atomically

FORMAT = "tinyscale-latency-table"
# Measured parts a missing part is estimated from (`LatencyTable.estimate`).
ESTIMATE_NEIGHBOURS = 4


@dataclass(frozen=True)
class Entry:
    """One measured part: its median latency and interquartile range (µs)."""

    part: Part
    median_us: float
    iqr_us: float

    def to_dict(self) -> dict:
        return {"part": self.part.to_dict(), "median_us": self.median_us, "iqr_us": self.iqr_us}


@dataclass(frozen=True)
class Prediction:
    """A predicted latency and how it was reached."""

    latency_us: float
    summed_us: float
    parts: int
    estimated: int  # parts the table lacked, estimated from a neighbour

    @property
    def latency_ms(self) -> float:
        return self.latency_us / 1000.0


@dataclass
class LatencyTable:
    """Per-part latencies of one device profile, and the calibration to whole networks."""

    profile: DeviceProfile
    entries: dict[str, Entry] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    measurement: dict = field(default_factory=dict)  # warm-up and repeats used
    _estimates: dict = field(default_factory=dict, repr=False, compare=False)  # key -> estimate

    # --- lookup -----------------------------------------------------------------------------
    def lookup(self, part: Part) -> tuple[float, bool]:
        """(latency in µs, exact): the entry for the part's key, else an estimate."""
        entry = self.entries.get(part.key)
        if entry is not None:
            return entry.median_us, True
        if part.key not in self._estimates:
            self._estimates[part.key] = self.estimate(part)
        return self._estimates[part.key], False

    def estimate(self, part: Part) -> float:
        """A part the table lacks, from the measured parts of its group (role, kind, kernel,
        stride, skip): the `ESTIMATE_NEIGHBOURS` nearest (distance in log side, log mid and log
        out channels; heads with the same number of classes first) give a local fit
        latency = a + b·MACs (a, b >= 0: a fixed cost per call plus a cost per MAC); with one
        neighbour, or neighbours of equal MACs, its latency scaled by the ratio of MACs."""
        import numpy as np
        from scipy.optimize import nnls

        target = (math.log(part.size), math.log(part.mid_channels), math.log(part.out_channels))
        scored = []
        for entry in self.entries.values():
            p = entry.part
            if p.group != part.group:
                continue
            here = (math.log(p.size), math.log(p.mid_channels), math.log(p.out_channels))
            dist = sum((a - b) ** 2 for a, b in zip(target, here)) + (p.classes != part.classes) * 1e6
            scored.append((dist, entry.part.key, entry))
        if not scored:
            raise ValueError(f"the latency table has no {part.role} part like {part.key} "
                             "(nothing of its kind, kernel and stride was measured)")
        scored.sort(key=lambda x: (x[0], x[1]))
        near = [e for _, _, e in scored[:ESTIMATE_NEIGHBOURS]]
        xs = np.array([float(e.part.macs) for e in near])
        if len(near) >= 2 and xs.max() > xs.min():
            ys = np.array([e.median_us for e in near])
            (a, b), _ = nnls(np.column_stack([np.ones_like(xs), xs]), ys)
            if b > 0:
                return float(a + b * part.macs)
        best = near[0]
        return best.median_us * part.macs / max(1, best.part.macs)

    def predict(self, recipe: Recipe) -> Prediction:
        parts = recipe_parts(recipe)
        total, estimated = 0.0, 0
        for part in parts:
            us, exact = self.lookup(part)
            total += us
            estimated += not exact
        return Prediction(self.calibration.apply(total, len(parts), recipe), total, len(parts), estimated)

    def predict_us(self, recipe: Recipe) -> float:
        return self.predict(recipe).latency_us

    def missing(self, recipes: Iterable[Recipe]) -> list[Part]:
        """The distinct parts of ``recipes`` the table lacks, in first-seen order."""
        seen: dict[str, Part] = {}
        for recipe in recipes:
            for part in recipe_parts(recipe):
                if part.key not in self.entries:
                    seen.setdefault(part.key, part)
        return list(seen.values())

    # --- building -----------------------------------------------------------------------------
    def add(self, part: Part, stats: LatencyStats) -> None:
        """Enter one measured part (estimates made before are forgotten)."""
        self.entries[part.key] = Entry(part, stats.median_us, stats.iqr_us)
        self._estimates.clear()

    def copy(self) -> LatencyTable:
        return LatencyTable(self.profile, dict(self.entries), self.calibration, dict(self.measurement))

    def fill(self, recipes: Iterable[Recipe], measurer: Measurer, *, progress: bool = False) -> int:
        """Measure the parts of ``recipes`` the table lacks (exact keys); returns how many."""
        self._check_measurer(measurer)
        todo = self.missing(recipes)
        for part in _bar(todo, "parts", progress):
            self.add(part, measurer.measure_part(part))
        self.measurement = {"part_warmup": measurer.part_warmup, "part_repeats": measurer.part_repeats,
                            "warmup": measurer.warmup, "repeats": measurer.repeats}
        return len(todo)

    def calibrate(self, recipes: Iterable[Recipe], measurer: Measurer, *, progress: bool = False,
                  kind: str = "linear") -> Calibration:
        """Measure whole networks and fit the correction (``kind``: one of
        `tinyscale.latency.calibration.CORRECTIONS`) from summed parts to them."""
        self._check_measurer(measurer)
        recipes = list(recipes)
        self.fill(recipes, measurer, progress=progress)
        points = []
        for recipe in _bar(recipes, "networks", progress):
            stats = measurer.measure_recipe(recipe)
            raw = Calibration()
            pred = replace(self, calibration=raw).predict(recipe)
            points.append(CalibrationPoint(recipe, stats.median_us, pred.summed_us, pred.parts))
        self.calibration = Calibration.fit(points, kind)
        return self.calibration

    def _check_measurer(self, measurer: Measurer) -> None:
        if (measurer.engine, measurer.threads, measurer.batch) != (self.profile.engine, self.profile.threads,
                                                                   self.profile.batch):
            raise ValueError("the measurer's engine/threads/batch differ from the table's profile")

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "profile": self.profile.to_dict(),
            "measurement": dict(self.measurement),
            "calibration": self.calibration.to_dict(),
            "entries": {k: e.to_dict() for k, e in sorted(self.entries.items())},
        }

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomically(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: object, where: str = "latency table") -> LatencyTable:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: not a tinyscale latency table (a JSON object is expected)")
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a tinyscale latency table (format {data.get('format')!r}, "
                             f"expected {FORMAT!r})")
        if not is_exact_int(data.get("format_version"), FORMAT_VERSION):
            raise ValueError(f"{where}: format version {data.get('format_version')!r}; this tinyscale reads "
                             f"version {FORMAT_VERSION}: rebuild it with `tinyscale latency-table`")
        missing = [k for k in ("profile", "calibration", "entries") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
        profile = DeviceProfile.from_dict(data["profile"], where)
        if not is_exact_int(profile.format_version, FORMAT_VERSION):
            raise ValueError(f"{where}: the profile says format version {profile.format_version!r}, "
                             f"this tinyscale reads {FORMAT_VERSION}")
        measurement = data.get("measurement") or {}
        try:
            # A table from elsewhere sizes what is allocated here (a batch of inputs) and what is
            # printed: its counts and latencies are held to the limits a measurement here is.
            check_count("threads", profile.threads, 1, MAX_THREADS)
            check_count("batch", profile.batch, 1, MAX_BATCH)
            if not isinstance(measurement, dict):
                raise ValueError(f"'measurement' is {measurement!r}, expected an object")
            entries = {}
            for key, raw in data["entries"].items():
                part = Part.from_dict(raw["part"])
                if part.key != key:
                    raise ValueError(f"entry {key!r} holds the part {part.key!r}")
                median = raw["median_us"]
                if isinstance(median, bool) or not isinstance(median, (int, float)) or not (
                        math.isfinite(median) and 0 < median <= MAX_LATENCY_US):
                    raise ValueError(f"entry {key!r} has latency {median!r}")
                entries[key] = Entry(part, float(median), check_number(f"entry {key!r}: iqr_us", raw["iqr_us"], 0,
                                                                       MAX_LATENCY_US))
            calibration = Calibration.from_dict(data["calibration"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: malformed entries or calibration ({type(exc).__name__}: {exc})") from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not entries:
            raise ValueError(f"{where}: the table has no entries")
        return cls(profile, entries, calibration, dict(measurement))

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        """The table in the file at ``path`` (ValueError when there is none, or it is not a
        regular file, larger than `tinyscale.limits.MAX_JSON_BYTES`, or damaged; other OSErrors
        are the machine's)."""
        path = Path(path)
        try:
            raw = read_bounded(path, MAX_JSON_BYTES, "latency table")
        except FileNotFoundError:
            raise ValueError(f"no latency table at {path}: build one with `tinyscale latency-table --out FILE`") from None
        try:
            data = loads_json(raw.decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON, truncated or corrupt ({exc.msg} at line {exc.lineno})") from None
        except ValueError as exc:  # not UTF-8, or nested too deeply
            raise ValueError(f"{path}: not valid JSON, truncated or corrupt ({exc})") from None
        return cls.from_dict(data, str(path))


def _bar(items: list, unit: str, progress: bool):
    """``items``, behind a progress bar when ``progress``."""
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, unit=unit[:-1], desc=f"latency {unit}", dynamic_ncols=True)
