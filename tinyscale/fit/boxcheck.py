"""The study's own look at its box, halfway through its budget (issue 25 item 6).

A ridge on the edge of the sampled box is a finding, not an answer (`tinyscale.fit.edges`).
`check_box` fits the trials so far as `tinyscale fit` would and solves the recipes at 1/2, 1/4,
1/8 and 1/16 of B0 (those inside the study's window); every recipe whose r or d sits at an edge
of the box that the architecture does not impose asks for the box past it (the edge's
``wider`` range). `tinyscale study --widen-box` then spends the rest of its budget in the union
of those ranges, and the study's box history says where and why (`Study.widen_box`).

Edges at an axis the fit leaves undetermined do not count (the solver drops them): a guess
sitting at an edge says nothing about what lies past it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinyscale.fit.edges import Edge

CHECK_RATIOS = (0.5, 0.25, 0.125, 0.0625)  # the budgets the product answers for, as compare's defaults


@dataclass(frozen=True)
class BoxCheck:
    """What the check found: the box edges each checked ratio's recipe sits at, the
    architecture's limits it reached (nothing past them), and the wider ranges asked for."""

    trials: int  # completed runs the fit read
    ratios: tuple[float, ...]  # the ratios checked
    edges: tuple[tuple[float, Edge], ...] = ()  # (c, edge) at the box's own edges
    limits: tuple[tuple[float, Edge], ...] = ()  # (c, edge) at the architecture's limits
    wider: dict[str, tuple[float, float]] = field(default_factory=dict)  # "r_range"/"d_range" -> new range
    skipped: str | None = None  # why no check was possible (too few trials, a failed fit)

    def text(self) -> str:
        if self.skipped:
            return f"box check skipped: {self.skipped}"
        if not self.edges:
            where = "" if not self.limits else (" (at the architecture's limit: " + "; ".join(
                f"{e.axis}={e.value:g} at c={c:g}" for c, e in self.limits) + ", nothing lies past it)")
            return (f"box check on {self.trials} runs: no recipe at c = {', '.join(f'{c:g}' for c in self.ratios)} sits "
                    f"at an edge of the sampled box{where}; the box stays")
        found = "; ".join(f"{e.axis}={e.value:g} at its {'lowest' if e.side == 'low' else 'highest'} sampled value "
                          f"{e.bound:g} (c={c:g})" for c, e in self.edges)
        widened = "; ".join(f"{k.replace('_', '-')} -> {lo:g},{hi:g}" for k, (lo, hi) in self.wider.items())
        return f"box check on {self.trials} runs: {found}: the rest of the budget samples past it ({widened})"

    def to_dict(self) -> dict:
        return {"trials": self.trials, "ratios": list(self.ratios), "skipped": self.skipped,
                "edges": [{"c": c, "axis": e.axis, "side": e.side, "value": e.value, "bound": e.bound}
                          for c, e in self.edges],
                "limits": [{"c": c, "axis": e.axis, "side": e.side, "value": e.value} for c, e in self.limits],
                "wider": {k: list(v) for k, v in self.wider.items()}}


def check_box(trials, config, *, from_rungs: str = "fit", seed: int = 0) -> BoxCheck:
    """Fit ``trials`` (completed runs of a study with ``config``; `fit_scaling`'s ``from_rungs``)
    and look for recipes at the box's edges at the `CHECK_RATIOS` inside the window."""
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.solve import RecipeSolver

    lo, hi = config.window
    ratios = tuple(c for c in CHECK_RATIOS if lo <= c <= hi)
    if not ratios:
        return BoxCheck(len(trials), ratios, skipped=f"the window {lo:g}-{hi:g} holds none of the ratios checked")
    try:
        solver = RecipeSolver(fit_scaling(trials, config, seed=seed, from_rungs=from_rungs))
        answers = [(c, solver.solve(c)) for c in ratios]
    except ValueError as exc:  # too few trials, nothing reachable: the study goes on as it was
        return BoxCheck(len(trials), ratios, skipped=str(exc))
    edges = tuple((c, e) for c, a in answers for e in a.edges if not e.limit)
    limits = tuple((c, e) for c, a in answers for e in a.edges if e.limit)
    wider: dict[str, tuple[float, float]] = {}
    for _, e in edges:
        key = f"{e.axis}_range"
        old = wider.get(key, getattr(config, key))
        wider[key] = (min(old[0], e.wider[0]), max(old[1], e.wider[1]))
    return BoxCheck(len(trials), ratios, edges, limits, wider)
