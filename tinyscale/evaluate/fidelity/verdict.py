"""The verdict of the fidelity check: the thresholds each number is held to, `judge` (one
plain sentence per check, failures first), and the advice each verdict gives the user."""

from __future__ import annotations

from tinyscale.evaluate.fidelity.stats import Signal

# FBNetV3 refines its proxy until the rank correlation with full training reaches 0.92.
RHO_FBNETV3 = 0.92
# Our bar for "the brief runs rank recipes like longer training": weaker than FBNetV3's because
# a study's brief runs are much shorter than its proxy and ρ on ~10 recipes is itself uncertain
# (its standard error is about 0.1 near ρ = 0.8).
RHO_GOOD = 0.8
# Below this the agreement cannot be told from chance at the default size: with 10 recipes a
# one-sided 5 % test needs ρ ≥ 0.56.
RHO_POOR = 0.5
# The rise of accuracy with c must be at least 2 standard errors (about 95 %) to count as
# resolved; without it the study cannot even rank networks of different cost.
SLOPE_T_MIN = 2.0
# Fraction of the brief accuracies' variance that is not seed noise. Under half: more noise
# than anything else. At least 0.8: seed noise is at most 0.45 of the spread (in sd).
BEYOND_NOISE_POOR = 0.5
BEYOND_NOISE_GOOD = 0.8
# Residual sd at matched c in units of σ. At 1.5σ, 1 − 1/1.5² = 56 % of the spread between
# recipes of equal cost is the recipe rather than the seed; at about 1σ it is all seed noise,
# and the Pareto models the GPs are fitted on were picked by seed.
MATCHED_GOOD = 1.5

VERDICTS = ("trustworthy", "weak", "untrustworthy")
ADVICE = {
    "trustworthy": "the brief runs carry signal: the recipe reflects real differences between recipes",
    "weak": "treat the recipe as a rough guide: the study resolves part of what it needs, not all",
    "untrustworthy": "the brief accuracies do not separate recipes from seed noise reliably: train longer "
                     "(--steps) or run more trials before trusting the recipe",
}


def _points(fraction: float) -> str:
    return f"{100 * fraction:.2f} points"


def judge(rho: float | None, n_pairs: int, sigma: float, signal: Signal) -> tuple[str, list[str]]:
    """The verdict and one sentence per check (failures first): any failed check makes it
    untrustworthy, else any check short of good makes it weak."""
    bad: list[str] = []  # any of these: untrustworthy
    short: list[str] = []  # any of these (and no bad): weak
    good: list[str] = []

    if rho is None:
        bad.append(f"the rank correlation with longer training is undefined on {n_pairs} recipes "
                   "(all brief or all long accuracies equal)")
    elif rho < RHO_POOR:
        bad.append(f"the brief runs rank {n_pairs} recipes unlike longer training (Spearman ρ = {rho:.2f} "
                   f"< {RHO_POOR})")
    elif rho < RHO_GOOD:
        short.append(f"the brief runs rank {n_pairs} recipes only partly like longer training "
                     f"(Spearman ρ = {rho:.2f}; good is ≥ {RHO_GOOD}, FBNetV3 asks {RHO_FBNETV3})")
    else:
        good.append(f"the brief runs rank {n_pairs} recipes like longer training (Spearman ρ = {rho:.2f})")

    per_doubling = f"{100 * signal.slope:+.2f} ± {100 * signal.slope_se:.2f} points per doubling of c"
    t = signal.slope_t
    if t is None:
        (good if signal.slope > 0 else bad).append(f"accuracy moves {per_doubling} (an exact fit)")
    elif t < SLOPE_T_MIN:
        what = "falls" if signal.slope < 0 else "does not rise measurably"
        bad.append(f"accuracy {what} with c ({per_doubling}, t = {t:.1f} < {SLOPE_T_MIN})")
    else:
        good.append(f"accuracy rises {per_doubling} (t = {t:.1f})")

    share = f"{signal.beyond_noise:.0%} of the accuracy variance is beyond seed noise (σ = {_points(sigma)})"
    if signal.beyond_noise < BEYOND_NOISE_POOR:
        bad.append(f"only {share}")
    elif signal.beyond_noise < BEYOND_NOISE_GOOD:
        short.append(share)
    else:
        good.append(share)

    ratio = signal.residual_ratio
    if ratio is None:
        short.append("the seed noise measured 0, so the spread at matched c cannot be put against it "
                     "(too few replicates, or a tiny validation set?)")
    elif ratio < MATCHED_GOOD:
        short.append(f"at matched c recipes differ by {_points(signal.residual_sd)} (sd), {ratio:.1f}σ: "
                     f"mostly seed noise, so the r/d split is not resolved (good is ≥ {MATCHED_GOOD}σ)")
    else:
        good.append(f"at matched c recipes differ by {_points(signal.residual_sd)} (sd), {ratio:.1f}σ")

    verdict = "untrustworthy" if bad else "weak" if short else "trustworthy"
    return verdict, bad + short + good
