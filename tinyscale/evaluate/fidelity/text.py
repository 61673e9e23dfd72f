"""The fidelity check in words: the block `tinyscale fidelity` prints (`format_fidelity`), the
shorter one `tinyscale fit` prints from the stored check (`describe_stored`), and the line on a
fitted surface's rank agreement with the long runs (`format_model_agreement`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tinyscale.evaluate.fidelity.persist import load_fidelity
from tinyscale.evaluate.fidelity.records import Fidelity, ModelAgreement
from tinyscale.evaluate.fidelity.verdict import RHO_FBNETV3, RHO_GOOD


def not_measured_hint(study_dir: str | os.PathLike) -> str:
    return f"not measured: run `tinyscale fidelity {study_dir}`"


def stale_note(fidelity: Fidelity, completed: int | Mapping[int, int] | None) -> str | None:
    """A note when the study has gained completed trials since the check was measured.
    ``completed``: the study's completed trials now, or for a study in rungs its completed
    recipes per rung (the check counts those of the rung it retrained)."""
    if isinstance(completed, Mapping):
        completed = completed.get(fidelity.rung)
    if completed is None or completed <= fidelity.signal.n:
        return None
    runs = "completed trials" if fidelity.rung == 0 else f"completed recipes at rung {fidelity.rung}"
    return (f"measured on {fidelity.signal.n} {runs}; the study has {completed} now "
            "(rerun the check to include them)")


def format_fidelity(fidelity: Fidelity | None, study_dir: str | os.PathLike = "DIR", *,
                    completed: int | Mapping[int, int] | None = None, reasons: bool = True) -> str:
    """The text block `tinyscale fidelity` prints (the hint when None): the verdict, ρ, σ and the
    signal line, then (``reasons``) one line per check; a note when the study has grown since."""
    if fidelity is None:
        return f"fidelity   {not_measured_hint(study_dir)}"
    f, s, st = fidelity, fidelity.signal, fidelity.settings
    runs = "the brief runs" if f.rung == 0 else f"rung {f.rung}'s runs"
    steps = "" if st is None else f" ({st.steps} steps) and {st.factor:g}x longer runs ({st.long_steps} steps)"
    rho = "undefined" if f.rho is None else f"{f.rho:.2f}"
    matched = "" if f.rho_matched is None else f"; at matched c (trend in log2 c removed) ρ = {f.rho_matched:.2f}"
    per = " ".join(f"{100 * g.sd:.2f}" for g in f.noise)
    t = "exact fit" if s.slope_t is None else f"t = {s.slope_t:.1f}"
    ratio = "n/a" if s.residual_ratio is None else f"{s.residual_ratio:.2f}σ"
    lines = [
        f"fidelity   {f.verdict.upper()}: {f.advice}",
        f"rank       Spearman ρ = {rho} between {runs}{steps}, {len(f.pairs)} recipes "
        f"(good ≥ {RHO_GOOD}; FBNetV3 stops at {RHO_FBNETV3}){matched}",
        f"noise      seed σ = {100 * f.sigma:.2f} points (pooled, {f.sigma_df} df; per recipe {per})",
        f"signal     slope {100 * s.slope:+.2f} ± {100 * s.slope_se:.2f} points per doubling of c ({t}, "
        f"{s.n} trials); residual sd at matched c {100 * s.residual_sd:.2f} points = {ratio}; "
        f"{s.beyond_noise:.0%} of the accuracy variance beyond seed noise",
    ]
    if reasons:
        lines += [f"because    {r}" for r in f.reasons]
    elif f.verdict != "trustworthy" and f.reasons:
        lines.append(f"mainly     {f.reasons[0]}")  # the first reason is the deciding one
    note = stale_note(f, completed)
    if note:
        lines.append(f"note       {note}")
    return "\n".join(lines)


def describe_stored(study_dir: str | os.PathLike, completed: int | Mapping[int, int] | None = None) -> str:
    """The stored check in a few lines (verdict, ρ, σ, slope, and the deciding reason unless
    trustworthy), the hint when there is none, or why it is unreadable: what `tinyscale fit`
    prints. Never raises."""
    try:
        fidelity = load_fidelity(study_dir)
    except ValueError as exc:
        return f"fidelity   unreadable: {exc}"
    return format_fidelity(fidelity, study_dir, completed=completed, reasons=False)


def format_model_agreement(agreement: ModelAgreement | None) -> str | None:
    """The line `tinyscale fit` prints for the surface's agreement with the long runs."""
    if agreement is None:
        return None
    rho = "undefined" if agreement.rho is None else f"{agreement.rho:.2f}"
    brief = "undefined" if agreement.rho_brief is None else f"{agreement.rho_brief:.2f}"
    return (f"surface    the accuracy surface ranks the {agreement.n} recipes of the check at Spearman ρ = {rho} "
            f"against their long runs (their single brief runs: ρ = {brief})")
