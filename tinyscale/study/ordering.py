"""Reproducible decisions for a study with several workers (``promotion="ordered"``).

With several workers, a study that decides what to train next as runs finish (ASHA's way, the
default ``"async"``) depends on which run happens to finish first: the machine's load changes
which recipes are promoted, and so the study. An ordered study decides on a clock of its own
instead, the `StepClock`: ``lanes`` imaginary workers on which every run takes the steps it
trains times c^0.5 (c its FLOPs ratio; `CLOCK_EXPONENT`) of clock time, about what a CPU core
takes. Each decision is taken at the clock time of the lane that frees first and reads only
the runs whose clock time has finished by then; when one of those has not really finished
yet, the real worker waits for it. When nothing can be decided at that time (every
promotion made, the trial target met), the lane waits on the clock until the next run finishes
there. The same config, seed and lane count therefore make the same decisions in
the same order however fast each run really is, and a resumed study replays the clock from its
stored events (`StepClock.to_dict`) to carry on where it stopped.

The cost of it is waiting: a run that really takes longer than its clock time says (a busy
core, a device whose step time grows otherwise with c) holds back the decisions that read it.
benchmarks/bench_ordered.py measures how much.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

PROMOTIONS = ("async", "ordered")
# A run's clock time: its steps x c ** CLOCK_EXPONENT. On one CPU core a step's time grows about
# as c^0.5 (fitted on the runs of two studies: c^0.53 on the Imagenette halving study, c^0.41 on a
# demo study); steps alone made an ordered study wait for the wide runs and cost 1.25x async's time
# on 2 workers, against 1.02-1.06x (benchmarks/bench_ordered.py, RESULTS "ordered promotion").
CLOCK_EXPONENT = 0.5
STORED_BEFORE_EXPONENT = 0.5  # the exponent of the clocks stored before it was (session 17's)
MAX_EXPONENT = 2.0  # a step's time grows about as c^1 at most (compute-bound): 2 catches nonsense, not a device
CLOCK_META = "step_clock"  # the study's meta key holding the clock's events (ordered studies)

RunKey = tuple[int, int]  # (trial number, rung)


@dataclass
class StepClock:
    """``lanes`` imaginary workers; ``events`` every dispatch ((number, rung)) and wait (None)
    in order, which with ``exponent`` is all a resumed study needs to rebuild the clock. A run's
    clock time is steps x c ** ``exponent``, from ``size``: a run's (steps, FLOPs ratio c). The
    exponent is stored with the events, so a study replays its clock as it was run whatever a
    later version's `CLOCK_EXPONENT`."""

    lanes: int
    size: Callable[[RunKey], tuple[float, float]]
    events: list[RunKey | None] = field(default_factory=list)
    exponent: float | None = None  # None: today's `CLOCK_EXPONENT`
    free_at: list[float] = field(init=False)
    finish: dict[RunKey, float] = field(init=False, default_factory=dict)
    # Runs not yet finished on the clock, by finish time (a heap), and those that have: the
    # clock only moves forward, so a run moves from the one to the other once.
    _ahead: list[tuple[float, int, RunKey]] = field(init=False, default_factory=list, repr=False)
    _due: set[RunKey] = field(init=False, default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.lanes, bool) or not isinstance(self.lanes, int) or self.lanes < 1:
            raise ValueError(f"a step clock needs a whole number of lanes >= 1, got {self.lanes!r}")
        if self.exponent is None:
            self.exponent = CLOCK_EXPONENT
        if isinstance(self.exponent, bool) or not isinstance(self.exponent, (int, float)) or not (
                0 <= self.exponent <= MAX_EXPONENT):
            raise ValueError(f"a step clock's exponent must be a number in [0, {MAX_EXPONENT:g}], got {self.exponent!r}")
        self.free_at = [0.0] * self.lanes
        events, self.events = list(self.events), []
        for event in events:
            if event is None:
                self.wait()
            else:
                self.dispatch(event)

    @property
    def now(self) -> float:
        """The clock time of the next decision: when the first lane frees."""
        return min(self.free_at)

    def due(self) -> set[RunKey]:
        """The runs a decision taken now may read: those finished on the clock by now (the
        clock's own set: read it, do not change it)."""
        now = self.now
        while self._ahead and self._ahead[0][0] <= now:
            self._due.add(heapq.heappop(self._ahead)[2])
        return self._due

    def knows(self, key: RunKey) -> bool:
        return key in self.finish

    def cost(self, key: RunKey) -> float:
        """``key``'s clock time: its steps x c ** exponent."""
        steps, ratio = self.size(key)
        return steps * ratio ** self.exponent

    def dispatch(self, key: RunKey) -> None:
        """Start ``key`` on the first free lane (the lowest-numbered among equals)."""
        if key in self.finish:
            raise ValueError(f"run {key} is already on the clock")
        lane = self.free_at.index(self.now)
        self.free_at[lane] += self.cost(key)
        self.finish[key] = self.free_at[lane]
        heapq.heappush(self._ahead, (self.free_at[lane], len(self.finish), key))
        self.events.append((int(key[0]), int(key[1])))

    def wait(self) -> bool:
        """Nothing to decide now: the first free lane waits until the next run finishes on the
        clock. False (and nothing changes) when no run finishes later: nothing will change."""
        self.due()  # what remains ahead finishes after now
        if not self._ahead:
            return False
        lane = self.free_at.index(self.now)
        self.free_at[lane] = self._ahead[0][0]
        self.events.append(None)
        return True

    def to_dict(self) -> dict:
        return {"lanes": self.lanes, "exponent": self.exponent,
                "events": [None if e is None else list(e) for e in self.events]}

    @classmethod
    def from_dict(cls, data: object, size: Callable[[RunKey], tuple[float, float]]) -> StepClock:
        """The clock a study stored (ValueError, in words, when the stored value is damaged); a
        record without an exponent was made with `STORED_BEFORE_EXPONENT`."""
        if not isinstance(data, dict) or not isinstance(data.get("events"), list):
            raise ValueError(f"the study's {CLOCK_META} is not a clock's record: {data!r:.80}")
        events: list[RunKey | None] = []
        for event in data["events"]:
            if event is not None and not (isinstance(event, list) and len(event) == 2
                                          and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in event)):
                raise ValueError(f"the study's {CLOCK_META} holds {event!r}, not a (trial, rung) pair")
            events.append(None if event is None else (event[0], event[1]))
        return cls(data.get("lanes"), size, events, data.get("exponent", STORED_BEFORE_EXPONENT))


def describe_promotion(study) -> str:
    """One line for `trials`, `study`'s summary and the app: how an open study in rungs decided
    its promotions (its config's; for an ordered one its stored clock's lanes and what it charges
    a run, next to what a step of the study's runs measured)."""
    if study.config.promotion == "ordered":
        from tinyscale.study.timing import step_exponent

        stored_clock = study.get_meta(CLOCK_META)
        lanes = stored_clock.get("lanes") if isinstance(stored_clock, dict) else None
        exponent = stored_clock.get("exponent", STORED_BEFORE_EXPONENT) if isinstance(stored_clock, dict) else None
        on = f"on a clock of {lanes} lane{'s' if lanes != 1 else ''}" if lanes else "on a clock"
        charge = f", a run charged steps x c^{exponent:g}" if isinstance(exponent, (int, float)) else ""
        measured = step_exponent(study.runs("completed"))
        # A clock far from the machine makes workers wait for the runs it undercharges.
        seen = "" if measured is None else f"; its runs took c^{measured[0]:.2f} a step ({measured[1]} runs)"
        return f"promotion: ordered, {on}{charge} (the same decisions however fast its runs finished){seen}"
    return "promotion: async, as runs finished (a rerun on another machine or load may promote others)"


def check_promotion(value: object, clock_exponent: object = None) -> None:
    """ValueError (in the command line's words) for a promotion that is not one of `PROMOTIONS`,
    or a clock exponent that is not a number in [0, `MAX_EXPONENT`] for an ordered study."""
    if value not in PROMOTIONS:
        raise ValueError(f"--promotion must be one of {', '.join(PROMOTIONS)}, got {value!r}")
    if clock_exponent is None:
        return
    if value != "ordered":
        raise ValueError("--clock-exponent is for --promotion ordered (an async study keeps no clock)")
    if isinstance(clock_exponent, bool) or not isinstance(clock_exponent, (int, float)) or not (
            0 <= clock_exponent <= MAX_EXPONENT):
        raise ValueError(f"--clock-exponent must be a number from 0 to {MAX_EXPONENT:g}, got {clock_exponent!r}")


def unfinished(due: set[RunKey], training: Iterable[RunKey]) -> list[RunKey]:
    """The runs a decision must read (``due``) that are still ``training`` (or waiting to be
    trained again): a pass over the few runs in flight, not over every run the clock has seen."""
    return sorted(key for key in training if key in due)
