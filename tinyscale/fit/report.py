"""The human-readable report of a scaling fit (`tinyscale fit`, the demo, the app's fit
details): the method and what it read, the surface's own diagnostics, the c -> r and c -> d
GPs, the curve at five ratios and the fit's warnings."""

from __future__ import annotations

import math

import numpy as np

from tinyscale.fit.gp import ScalingFit
from tinyscale.fit.multifidelity import MultiFidelitySurface, steps_of


def format_fit(fit: ScalingFit) -> str:
    """The human-readable report of `tinyscale fit`."""
    dg = fit.diagnostics
    lo, hi = fit.c_range
    if fit.method == "surface":
        sd = dg.surface
        across = isinstance(fit.surface, MultiFidelitySurface)
        lines = [
            f"method     surface: accuracy GP over (log c, log r, log d{', rung' if across else ''}) on all "
            f"{dg.n_models} completed {'runs' if across else 'trials'} ({dg.n_front} non-dominated"
            f"{' within their rung' if across else ''}); c from {lo:.4g} to {hi:.4g}",
            *([fit.surface.describe(steps_of(fit.config))] if across else []),
            f"surface    lengthscales {sd.lengthscales[0]:.3g} (log c) {sd.lengthscales[1]:.3g} (log r) "
            f"{sd.lengthscales[2]:.3g} (log d); noise sd {sd.noise_sd_points:.2f} points "
            f"({'the seed noise it infers' if sd.noise == 'inferred' else 'fixed at the measured seed noise'}); "
            f"LOO rmse {sd.loo_rmse_points:.2f} points vs a spread of {sd.spread_points:.2f}, "
            f"95% band coverage {sd.loo_coverage:.0%}",
        ]
        curve_of = "ridge"
    else:
        lines = [
            f"method     pareto: {dg.n_models} selected (k={fit.k}) of a non-dominated front of {dg.n_front}; "
            f"c from {lo:.4g} to {hi:.4g}",
        ]
        curve_of = "selected models"
    for name, ls, noise, loo in (("r", dg.lengthscale_r, dg.noise_r, dg.loo_r), ("d", dg.lengthscale_d, dg.noise_d, dg.loo_d)):
        lines.append(
            f"GP c->{name}    lengthscale {ls:.3g} (log c), noise sd {noise:.3g} (log {name}); "
            f"LOO rmse {loo.rmse_log:.3g} (log), max rel error {loo.max_rel:.1%}, 95% band coverage {loo.coverage:.0%}"
        )
    corr = "  ".join(f"{k}={'n/a (constant)' if v is None else f'{v:+.2f}'}" for k, v in dg.correlation.items())
    lines.append(f"Pearson    with c along the {curve_of}: {corr}")
    grid = np.exp(np.linspace(math.log(lo), math.log(hi), 5))
    pred = fit.predict(grid)
    lines.append("curve      c        r [95% band]            d [95% band]")
    for i, c in enumerate(grid):
        lines.append(
            f"           {c:<8.4g} {pred.r.mean[i]:.3f} [{pred.r.lower[i]:.3f}, {pred.r.upper[i]:.3f}]"
            f"    {pred.d.mean[i]:.3f} [{pred.d.lower[i]:.3f}, {pred.d.upper[i]:.3f}]"
        )
    for w in dg.warnings:
        lines.append(f"warning    {w}")
    return "\n".join(lines)
