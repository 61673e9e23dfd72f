"""Active sampling: the ``botorch`` sampler proposes the study's next recipes with an acquisition.

The study's first ``init_trials`` trials are the seeded stream's (the same recipes a sobol study
of that seed trains first). After that each batch, one recipe per free worker, is chosen by
**qLogNEHVI** (botorch's noisy expected hypervolume improvement, log form) of the two objectives
the study is judged by: held-out accuracy and cost, -log c.

Why this acquisition: the study exists to find the best (r, d) at *every* c of the window, not
the single most accurate network; expected improvement of accuracy alone would march to the
largest c. The hypervolume of (accuracy, -log c) rewards exactly "better accuracy at some cost
level", and it is what the benchmark measures (`experiments/active_sampling.py`). The cost is
known without training (the counted MACs), so it is computed from the candidate's own input
(x = log c) inside the objective instead of being modelled; the only model is the accuracy
surface of the recipe fit (`tinyscale.fit.surface.AccuracySurface`: a GP of accuracy log-odds over
(log c, log r, log d) on every completed trial), refitted on the finished trials each batch.
The objective maps its log-odds samples back to accuracy, so the hypervolume is in the units
the benchmark reports. "Noisy" matters: trials are brief, and seed noise of a point or more is
as large as many architecture effects; NEHVI integrates over the surface's belief about the
trained trials instead of trusting their noisy accuracies.

Candidates are the points a Sobol stream asks for (r snapped to whole pixels, d to 3 decimals,
c log-uniform in the window; `tinyscale.study.samplers.base.unit_to_point`), a fresh scramble per batch.
The acquisition ranks them, and the best is turned into a recipe the way the stream does it:
width solved against the counted cost; a point whose c is out of reach, or whose network is
already in the study, is rejected and the next best taken. A batch of q is chosen greedily,
each pick pending for the next (botorch's sequential greedy), and every trial still pending or
training in the study is pending for all of them.

Deterministic: the candidates, the surface fit and the Monte-Carlo sampler of the acquisition
are all seeded from the study seed and the batch's first trial number, so the proposals are a
function of the study's stored trials (with one worker, of the finished ones).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

import numpy as np

from tinyscale.space.cost import ratio
from tinyscale.study.samplers.base import MAX_REJECTIONS_PER_RECIPE, Proposal, ProposalBatch, architecture_key, check_sampler, recipe_at, too_few_networks, unit_to_point
from tinyscale.study.samplers.sobol import StreamSampler
from tinyscale.study.trial import StudyConfig, Trial

CANDIDATES = 1024  # Sobol points ranked per pick (cheap: no width is solved before a point ranks first)
MC_SAMPLES = 128  # quasi-Monte-Carlo samples of the acquisition
COST_MARGIN = 0.1  # the cost reference point lies this share of the window's log span above its top
ACQUISITION = "qLogNEHVI"
PROPOSER = "botorch"
_KERNEL = "logei_fused_ext"  # botorch's fused hypervolume kernel, compiled on first use


def hypervolume_reference(config: StudyConfig) -> tuple[float, float]:
    """The (accuracy, -log c) point hypervolumes are measured from: chance accuracy, and a cost
    a little above the window's top, so the largest networks still count for something."""
    c_lo, c_hi = config.window
    return 1.0 / config.num_classes, -math.log(c_hi) - COST_MARGIN * math.log(c_hi / c_lo)


def hypervolume(trials: Sequence[Trial], config: StudyConfig) -> float:
    """Hypervolume of the completed trials' (accuracy, -log c) above `hypervolume_reference`.

    Measured in (accuracy, -log MACs) it is the same number: -log MACs = -log c - log MACs(B0)
    shifts every point and the reference alike.
    """
    import torch
    from botorch.utils.multi_objective.box_decompositions import DominatedPartitioning

    points = [(t.accuracy, -math.log(t.ratio)) for t in trials
              if t.state == "completed" and t.accuracy is not None and math.isfinite(t.accuracy) and t.ratio > 0]
    if not points:
        return 0.0
    partitioning = DominatedPartitioning(ref_point=torch.tensor(hypervolume_reference(config), dtype=torch.float64),
                                         Y=torch.tensor(points, dtype=torch.float64))
    return float(partitioning.compute_hypervolume())


def _x(c, r, d):
    """Model inputs (n, 3): log c, log r, log d (the accuracy surface's)."""
    import torch

    return torch.as_tensor(np.log(np.stack([np.asarray(v, dtype=np.float64) for v in (c, r, d)], axis=1)))


def _x_of(trials: Sequence[Trial]):
    return _x([t.ratio for t in trials], [t.recipe.r for t in trials], [t.recipe.d for t in trials])


def kernel_compiled() -> bool:
    """Whether botorch's fused hypervolume kernel is already built (its first build takes ~40 s)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        build = _get_build_directory(_KERNEL, verbose=False)
        return any(name.startswith(_KERNEL) and name.endswith(".so") for name in os.listdir(build))
    except Exception:  # noqa: BLE001 - only decides whether to print a hint
        return True


class BotorchSampler:
    """The stream for the first ``init_trials`` numbers, qLogNEHVI proposals after (module doc)."""

    def __init__(self, config: StudyConfig) -> None:
        check_sampler(config)
        self.config = config
        self.stream = StreamSampler(config)
        self._warned_compile = False

    def propose(self, trials: Sequence[Trial], numbers: Sequence[int],
                log: Callable[[str], None] = print) -> ProposalBatch:
        start = time.perf_counter()
        init = [n for n in numbers if n < self.config.init_trials]
        later = [n for n in numbers if n >= self.config.init_trials]
        batch = self.stream.propose(trials, init)
        proposals = list(batch.proposals)
        if batch.stop_reason or not later:
            return ProposalBatch(tuple(proposals), time.perf_counter() - start, batch.stop_reason)
        from tinyscale.fit.diagnostics import MIN_MODELS
        from tinyscale.fit.gp import usable_trials

        usable = usable_trials(list(trials))
        if len(usable) < MIN_MODELS:
            # Too many initial trials failed for a surface: keep drawing from the stream.
            picks, stop = self._from_stream(trials, proposals, later)
            how = f"the stream (only {len(usable)} trained trials, the surface needs {MIN_MODELS})"
        else:
            if not self._warned_compile and not kernel_compiled():
                log(f"{PROPOSER}: building botorch's {ACQUISITION} C++ kernel, once per machine (~40 s)...")
            self._warned_compile = True
            picks, stop = self._from_acquisition(trials, usable, proposals, later)
            how = f"{ACQUISITION} on the accuracy surface of {len(usable)} trials"
        proposals += picks
        seconds = time.perf_counter() - start
        names = ", ".join(str(p.number) for p in picks)
        note = f"{PROPOSER}: proposed trial{'s' if len(picks) != 1 else ''} {names} in {seconds:.1f} s ({how})"
        return ProposalBatch(tuple(proposals), seconds, stop, note if picks else None)

    # --------------------------------------------------------------------------- internals
    def _from_stream(self, trials, proposals, numbers) -> tuple[list[Proposal], str | None]:
        """Stream recipes in order, skipping networks the study already holds."""
        seen = {architecture_key(t.recipe) for t in trials} | {architecture_key(p.recipe) for p in proposals}
        picks: list[Proposal] = []
        index = 0
        try:
            for number in numbers:
                while architecture_key(recipe := self.stream.recipe(index)) in seen:
                    index += 1
                seen.add(architecture_key(recipe))
                picks.append(Proposal(number, recipe, self.config.sampling))
        except ValueError as exc:
            return picks, str(exc)
        return picks, None

    def _from_acquisition(self, trials, usable, proposals, numbers) -> tuple[list[Proposal], str | None]:
        import torch

        from tinyscale.fit.surface import AccuracySurface

        config = self.config
        batch_seed = config.seed * 1_000_003 + numbers[0]
        surface = AccuracySurface.fit([t.ratio for t in usable], [t.recipe.r for t in usable],
                                      [t.recipe.d for t in usable], [t.recipe.w for t in usable],
                                      [t.accuracy for t in usable])
        points = self._candidate_points(batch_seed)
        x_points = _x(points[:, 2], points[:, 0], points[:, 1])
        unfinished = [t for t in trials if t.state in ("pending", "running")]
        pending = [_x_of(unfinished)] if unfinished else []
        pending += [_x([ratio(p.recipe)], [p.recipe.r], [p.recipe.d]) for p in proposals]
        seen = {architecture_key(t.recipe) for t in trials} | {architecture_key(p.recipe) for p in proposals}
        picks: list[Proposal] = []
        for number in numbers:
            x_pending = torch.cat(pending) if pending else None
            values = self._acquisition_values(surface.model, _x_of(usable), x_pending, x_points, batch_seed)
            recipe = None
            misses = 0
            for i in np.argsort(-values, kind="stable"):
                r, d, c = points[i]
                candidate = recipe_at(config, float(r), float(d), float(c))
                if candidate is not None and architecture_key(candidate) not in seen:
                    recipe = candidate
                    break
                misses += 1
                if misses >= MAX_REJECTIONS_PER_RECIPE:
                    break
            if recipe is None:
                return picks, too_few_networks(config, misses, len(seen))
            seen.add(architecture_key(recipe))
            picks.append(Proposal(number, recipe, PROPOSER))
            pending.append(_x([ratio(recipe)], [recipe.r], [recipe.d]))
        return picks, None

    def _candidate_points(self, seed: int) -> np.ndarray:
        """(CANDIDATES, 3) of (r, d, c) from a Sobol scramble seeded by ``seed``."""
        import torch

        engine = torch.quasirandom.SobolEngine(dimension=3, scramble=True, seed=seed)
        units = engine.draw(CANDIDATES, dtype=torch.float64).tolist()
        return np.array([unit_to_point(tuple(u), self.config) for u in units], dtype=np.float64)

    def _acquisition_values(self, model, x_baseline, x_pending, x_points, seed: int) -> np.ndarray:
        """qLogNEHVI of each candidate (q = 1) given the pending points, as (n,) numpy."""
        import warnings

        import torch
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
        from botorch.sampling import SobolQMCNormalSampler

        def objectives(samples, X=None):
            # samples (..., q, 1) of accuracy log-odds -> (..., q, 2) of (accuracy, -log c)
            cost = -X[..., 0].expand(samples.shape[:-1])
            return torch.stack([torch.sigmoid(samples[..., 0]), cost], dim=-1)

        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(seed)  # baseline pruning draws samples too
            warnings.simplefilter("ignore")  # numerical hints about the near-degenerate pending set
            acq = qLogNoisyExpectedHypervolumeImprovement(
                model=model, ref_point=list(hypervolume_reference(self.config)), X_baseline=x_baseline,
                sampler=SobolQMCNormalSampler(torch.Size([MC_SAMPLES]), seed=seed),
                objective=GenericMCMultiOutputObjective(objectives), X_pending=x_pending, prune_baseline=True,
            )
            with torch.no_grad():
                values = torch.cat([acq(chunk.unsqueeze(1)) for chunk in x_points.split(256)])
        return values.numpy()


def proposed_by_acquisition(trial: Trial) -> bool:
    """Whether the acquisition (not the stream) chose this trial's recipe."""
    return trial.proposed_by == PROPOSER
