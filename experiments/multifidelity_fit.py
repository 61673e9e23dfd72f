"""Does the surface fitted on every rung give better recipes than the one-rung fit? (issue 25,
item 3: "the fit uses every rung ... Measure which gives better recipes")

Protocol, fixed on 2026-12-06 before any of these runs (results in benchmarks/RESULTS.md,
"halving", last subsection):

- Studies: the synthetic halving study of tests/_synthetic_halving.py (its `CFG`: 27 recipes,
  eta 3, 2 rungs, 10 rung-0 steps, one worker, `SyntheticExecutor()` with its default truth:
  depth bias 0.2 and noise 0.03 at the rung-0 length), study seed = the config's seed.
- The two fits, both with `tinyscale fit`'s defaults otherwise (surface method, noise inferred:
  no seed noise is measured here): one-rung = the surface on `Study.fit_trials()` (the fit rung);
  all-rungs = the surface across rungs on `Study.runs("completed")` (`tinyscale.fit.multifidelity`).
- Metric: at c = 0.08, 0.16, 0.32, 0.64, each fit's ridge recipe (r*, d*) (the argmax of its
  surface's posterior mean over the reachable (r, d) grid, `AccuracySurface.ridge`) scored by
  `true_shape` (0 is the best; it depends on r and d only); a study's score is the mean over the
  four c. Paired difference per study seed: all-rungs minus one-rung (> 0: all-rungs is better).
- Tuning, on study seeds 10-21 only: the kernel (linear-truncated, exponential-decay, ard) and
  the rung the ridge is read at (the top rung reached, or the study's fit rung), by the mean
  paired gain; the library's defaults are set to the winner before the held-out stage.
- Decision, on held-out study seeds 0-7 (never tuned on), through `fit_scaling(...,
  from_rungs="all")` with the library's defaults: the all-rungs fit becomes the default of
  `tinyscale fit` on halving studies iff its mean paired gain is > 0 and > 2 SE (SE = sd of the
  8 paired differences / sqrt(8)); otherwise the one-rung fit stays the default.
- Sanity check (reported, not part of the rule): the held-out stage again with the bias off
  (`SyntheticExecutor(bias=0.0)`).
- Real data, no training: a copy of the Imagenette halving study H (69 / 29 / 12 runs at
  100 / 300 / 900 steps) in a temporary directory, `tinyscale fit --from-rungs fit` and `--from-rungs all`,
  and each fit's recipe (`tinyscale recipe`) at c = 1/2, 1/4, 1/8, 1/16 side by side.

(The option was named ``--rungs`` when the protocol was fixed; it became ``--from-rungs`` after
the first run, since `tinyscale study --rungs` counts rungs. Nothing else changed.)

Amendment, 2026-12-06 21:55 UTC (session 13), before any of its runs: one noise for every rung?
The fit across rungs infers a single observation noise, yet a run's seed noise shrinks as it
trains longer (on the synthetic truth, sd ~ 1/sqrt(steps): the variance falls 9x from rung 0 to
rung 2). One shared noise calls the brief runs cleaner than they are and the long ones noisier.
- Variant "by-rung": the library's default fit across rungs (kind ard, every run) with its
  likelihood's noise a function of the fidelity s (the normalised fourth input):
  sigma^2(s) = sigma^2_top * exp(beta * (1 - s)), sigma^2_top with botorch's default noise prior
  and constraint, beta with a Normal(0, 2) prior (no value chosen on data: nothing to tune).
- Decision, on fresh held-out study seeds 30-37 (0-7 decided the across-rungs default; 10-21
  chose its kernel), bias 0.2: the noise by rung replaces the shared noise in the library iff
  its mean paired gain in ridge true shape (by-rung minus shared, per seed, `ridge_score`) is
  > 0 and > 2 SE; otherwise the shared noise stays and the variant is reported only.
- Reported, not in the rule: bias 0.0 on the same seeds; each fit's beta (the truth's is
  ln 9 = 2.2 in accuracy variance, about the same in log-odds); on the Imagenette study H
  (no training), both fits' ridges at c = 1/2..1/16 and beta.

    .venv/bin/python experiments/multifidelity_fit.py tune      # seeds 10-21, every variant
    .venv/bin/python experiments/multifidelity_fit.py heldout   # seeds 0-7, bias 0.2 and 0.0
    .venv/bin/python experiments/multifidelity_fit.py imagenette
    .venv/bin/python experiments/multifidelity_fit.py noise     # the amendment: seeds 30-37, and H
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic truth lives with the tests that assert on it

C_GRID = (0.08, 0.16, 0.32, 0.64)
TUNING_SEEDS = tuple(range(10, 22))
HELDOUT_SEEDS = tuple(range(8))
NOISE_SEEDS = tuple(range(30, 38))  # the amendment's held-out seeds
TARGETS = ("top", "fit")  # the rung the all-rungs ridge is read at
IMAGENETTE = ROOT / "runs" / "imagenette-halving" / "H"
IMAGENETTE_RATIOS = (0.5, 0.25, 0.125, 0.0625)


def synthetic_study(directory: Path, seed: int, bias: float):
    """The completed runs of one synthetic halving study: (fit rung's trials, every run, fit rung)."""
    from _synthetic_halving import CFG, SyntheticExecutor

    from tinyscale.study.driver import run_study

    with run_study(directory, replace(CFG, seed=seed), trials=27, executor=SyntheticExecutor(bias=bias),
                   progress=False) as study:
        return study.fit_trials(), study.runs("completed"), study.fit_rung()


def ridge_score(surface) -> tuple[float, list[float], list[float]]:
    """Mean true shape (0 is best) of ``surface``'s ridge recipes over `C_GRID`, and the ridge."""
    from _synthetic_halving import CFG, true_shape

    from tinyscale.fit.gpmodels import expected_jitter

    with expected_jitter():
        ridge = surface.ridge(CFG, C_GRID, samples=64)  # only the argmax of the mean is scored
    shapes = [true_shape(CFG.recipe(float(r), 1.0, float(d))) for r, d in zip(ridge.r, ridge.d)]
    return float(np.mean(shapes)), ridge.r.tolist(), ridge.d.tolist()


def one_rung_surface(trials):
    from _synthetic_halving import CFG

    from tinyscale.fit.gp import fit_scaling

    return fit_scaling(trials, CFG).surface


def all_rungs_surface(runs, kind: str | None = None, target: int | None = None):
    """The library's all-rungs fit (``kind``/``target`` None) or a tuning variant of it, on the
    runs ordered as `fit_scaling` orders them."""
    from _synthetic_halving import CFG

    from tinyscale.fit.gp import fit_scaling, usable_trials
    from tinyscale.fit.multifidelity import MultiFidelitySurface

    if kind is None and target is None:
        return fit_scaling(runs, CFG, from_rungs="all").surface
    runs = sorted(usable_trials(runs), key=lambda t: (t.rung, t.macs, t.number))
    column = {k: np.array([getattr(t, k) for t in runs], dtype=np.float64) for k in ("ratio", "accuracy")}
    return MultiFidelitySurface.fit(column["ratio"], [t.recipe.r for t in runs], [t.recipe.d for t in runs],
                                    [t.recipe.w for t in runs], column["accuracy"], [t.rung for t in runs],
                                    kind=kind, target=target)


def paired(rows: list[dict], key: str) -> tuple[float, float]:
    """Mean and SE of the paired gains ``rows[i][key] - rows[i]['one']``."""
    gains = np.array([row[key] - row["one"] for row in rows])
    return float(gains.mean()), float(gains.std(ddof=1) / math.sqrt(len(gains)))


def tune(out: Path) -> dict:
    from tinyscale.fit.multifidelity import KINDS

    variants = [(kind, target) for kind in KINDS for target in TARGETS]
    rows = []
    for seed in TUNING_SEEDS:
        started = time.time()
        fit_trials, runs, fit_rung = synthetic_study(out / f"tune-{seed}", seed, bias=0.2)
        row = {"seed": seed, "fit_rung": fit_rung, "top": max(t.rung for t in runs),
               "runs": [sum(t.rung == k for t in runs) for k in range(3)],
               "one": ridge_score(one_rung_surface(fit_trials))[0]}
        for kind, target in variants:
            at = row["top"] if target == "top" else fit_rung
            row[f"{kind}/{target}"] = ridge_score(all_rungs_surface(runs, kind, at))[0]
        rows.append(row)
        print(json.dumps(row), f"({time.time() - started:.0f} s)", flush=True)
    summary = {f"{k}/{t}": paired(rows, f"{k}/{t}") for k, t in variants}
    for name, (mean, se) in summary.items():
        print(f"{name:<28} paired gain {mean:+.4f} +- {se:.4f} (seeds 10-21)")
    best = max(summary, key=lambda name: summary[name][0])
    print(f"one-rung mean true shape {np.mean([r['one'] for r in rows]):+.4f}; best variant: {best}")
    return {"rows": rows, "summary": summary, "best": best}


def heldout(out: Path) -> dict:
    from tinyscale.fit.multifidelity import DEFAULT_KIND

    result = {"kind": DEFAULT_KIND}
    for bias in (0.2, 0.0):
        rows = []
        for seed in HELDOUT_SEEDS:
            fit_trials, runs, fit_rung = synthetic_study(out / f"heldout-{bias}-{seed}", seed, bias=bias)
            one, one_r, one_d = ridge_score(one_rung_surface(fit_trials))
            every, all_r, all_d = ridge_score(all_rungs_surface(runs))
            rows.append({"seed": seed, "fit_rung": fit_rung, "runs": [sum(t.rung == k for t in runs) for k in range(3)],
                         "one": one, "all": every, "gain": every - one, "one_r": one_r, "one_d": one_d,
                         "all_r": all_r, "all_d": all_d})
            print(json.dumps({k: v for k, v in rows[-1].items() if not k.endswith(("_r", "_d"))}), flush=True)
        mean, se = paired(rows, "all")
        adopt = mean > 0 and mean > 2 * se
        print(f"bias {bias}: one-rung {np.mean([r['one'] for r in rows]):+.4f}, all-rungs "
              f"{np.mean([r['all'] for r in rows]):+.4f}; paired gain {mean:+.4f} +- {se:.4f} (seeds 0-7)"
              + (f" -> {'adopt' if adopt else 'keep the one-rung default'}" if bias else " (sanity check)"))
        result[str(bias)] = {"rows": rows, "gain": mean, "se": se, "adopt": adopt if bias else None}
    return result


def imagenette(out: Path) -> dict:
    """Both fits of a copy of H, and each one's recipe at `IMAGENETTE_RATIOS`."""
    import contextlib
    import io

    from tinyscale.cli import main

    copy = out / "H"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(IMAGENETTE, copy, ignore=shutil.ignore_patterns("compare", "study.lock", "fit.json"))
    result = {}
    for which in ("fit", "all"):
        with contextlib.redirect_stdout(io.StringIO()) as text:
            assert main(["fit", str(copy), "--from-rungs", which]) == 0
        print(text.getvalue())
        recipes = []
        for c in IMAGENETTE_RATIOS:
            with contextlib.redirect_stdout(io.StringIO()) as answer:
                assert main(["recipe", str(copy), "--ratio", str(c), "--json"]) == 0
            recipes.append(json.loads(answer.getvalue()))
        result[which] = recipes
    print("c        --from-rungs fit: r / w / d   (notes)        --from-rungs all: r / w / d   (notes)")
    for i, c in enumerate(IMAGENETTE_RATIOS):
        cells = [f"{a['r']:.2f} / {a['w']:.2f} / {a['d']:.2f}   ({', '.join(a['note_kinds']) or '-'})"
                 for a in (result["fit"][i], result["all"][i])]
        print(f"{c:<8g} {cells[0]:<38} {cells[1]}")
    return result


def by_rung_surface(runs):
    """The library's default fit across rungs (`all_rungs_surface`) with a noise that falls with
    the fidelity: sigma^2(s) = sigma^2_top * exp(beta * (1 - s)) (the amendment); -> (surface, beta)."""
    import torch
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.models.utils.gpytorch_modules import get_gaussian_likelihood_with_lognormal_prior
    from gpytorch.likelihoods.noise_models import HomoskedasticNoise
    from gpytorch.priors import NormalPrior
    from linear_operator.operators import DiagLinearOperator

    from tinyscale.fit.gp import usable_trials
    from tinyscale.fit.gpmodels import fit_seeded
    from tinyscale.fit.multifidelity import FIDELITY_COLUMN, MultiFidelitySurface, RunFidelity

    class FidelityNoise(HomoskedasticNoise):
        def __init__(self, prior, constraint):
            super().__init__(noise_prior=prior, noise_constraint=constraint)
            self.register_parameter("beta", torch.nn.Parameter(torch.zeros(1)))
            self.register_prior("beta_prior", NormalPrior(0.0, 2.0), "beta")

        def forward(self, *params, shape=None, **kwargs):
            top = super().forward(*params, shape=shape, **kwargs)
            # Training passes the (transformed) inputs as a tensor, the prediction strategy as a list.
            x = params[0] if params and torch.is_tensor(params[0]) else (params[0][0] if params else None)
            if x is None or x.dim() < 2 or x.shape[-1] <= FIDELITY_COLUMN:
                return top
            return DiagLinearOperator(top.diagonal() * torch.exp(self.beta * (1.0 - x[..., FIDELITY_COLUMN])))

    def build(x, y):
        likelihood = get_gaussian_likelihood_with_lognormal_prior()
        likelihood.noise_covar = FidelityNoise(likelihood.noise_covar.noise_prior,
                                               likelihood.noise_covar.raw_noise_constraint)
        return SingleTaskGP(torch.as_tensor(x), torch.as_tensor(y).reshape(-1, 1), likelihood=likelihood,
                            input_transform=Normalize(d=4), outcome_transform=Standardize(m=1))

    runs = sorted(usable_trials(runs), key=lambda t: (t.rung, t.macs, t.number))
    rungs = tuple(t.rung for t in runs)
    fidelity = RunFidelity("ard", rungs, max(rungs), max(rungs))
    c, acc = (np.array([getattr(t, k) for t in runs]) for k in ("ratio", "accuracy"))
    x, y = MultiFidelitySurface._training(c, [t.recipe.r for t in runs], [t.recipe.d for t in runs], acc, fidelity)
    w = np.array([t.recipe.w for t in runs])
    model = fit_seeded(lambda: build(x, y))
    beta = float(model.likelihood.noise_covar.beta.detach())
    return MultiFidelitySurface(model, x, y, (float(w.min()), float(w.max())), fidelity), beta


def noise(out: Path) -> dict:
    """The amendment: one noise for every rung, or a noise that falls with the rung."""
    from tinyscale.fit.gp import fit_scaling
    from tinyscale.fit.gpmodels import expected_jitter
    from tinyscale.study.store import Study

    result = {}
    for bias in (0.2, 0.0):
        rows = []
        for seed in NOISE_SEEDS:
            _, runs, fit_rung = synthetic_study(out / f"noise-{bias}-{seed}", seed, bias=bias)
            shared = ridge_score(all_rungs_surface(runs))[0]
            surface, beta = by_rung_surface(runs)
            rows.append({"seed": seed, "runs": [sum(t.rung == k for t in runs) for k in range(3)],
                         "one": shared, "by-rung": ridge_score(surface)[0], "beta": beta})
            print(json.dumps(rows[-1]), flush=True)
        mean, se = paired(rows, "by-rung")
        adopt = mean > 0 and mean > 2 * se
        print(f"bias {bias}: shared noise {np.mean([r['one'] for r in rows]):+.4f}, by rung "
              f"{np.mean([r['by-rung'] for r in rows]):+.4f}; paired gain {mean:+.4f} +- {se:.4f} (seeds 30-37); "
              f"beta {np.mean([r['beta'] for r in rows]):.2f} (mean)"
              + (f" -> {'adopt' if adopt else 'keep the shared noise'}" if bias else " (reported only)"))
        result[str(bias)] = {"rows": rows, "gain": mean, "se": se, "adopt": adopt if bias else None}
    copy = out / "H"  # a copy: the experiment that owns H may be writing beside it
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(IMAGENETTE, copy, ignore=shutil.ignore_patterns("compare", "study.lock", "fit.json"))
    with Study.open(copy) as study:
        config, runs = study.config, study.runs("completed")
    shared = fit_scaling(runs, config, from_rungs="all").surface
    surface, beta = by_rung_surface(runs)
    with expected_jitter():
        ridges = {"shared": shared.ridge(config, IMAGENETTE_RATIOS), "by-rung": surface.ridge(config, IMAGENETTE_RATIOS)}
    print(f"Imagenette H ({len(runs)} runs): beta {beta:.2f}")
    for i, c in enumerate(IMAGENETTE_RATIOS):
        print(f"c = {c:<7g}" + "   ".join(f"{name}: r {ridge.r[i]:.3f} d {ridge.d[i]:.3f}" for name, ridge in ridges.items()))
    result["imagenette"] = {"beta": beta, **{name: {"r": ridge.r.tolist(), "d": ridge.d.tolist()}
                                             for name, ridge in ridges.items()}}
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("tune", "heldout", "imagenette", "noise"))
    ap.add_argument("--out", default=None, help="where the studies and results go (default: a new temporary directory)")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="multifidelity-fit-"))
    if out.resolve().is_relative_to((ROOT / "runs").resolve()):
        raise SystemExit("write elsewhere than runs/: other experiments read it")
    out.mkdir(parents=True, exist_ok=True)
    result = {"tune": tune, "heldout": heldout, "imagenette": imagenette, "noise": noise}[args.stage](out)
    (out / f"{args.stage}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"results in {out / f'{args.stage}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
