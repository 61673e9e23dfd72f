"""Does the study's brief training carry signal? FBNetV3's proxy check, on a study directory
(`tinyscale fidelity`; `summary` says what is measured and why).

- `stats`: rank correlation, trends in log2 c, pooled seed noise, the signal (pure numbers).
- `verdict`: the thresholds, `judge` and the advice of each verdict.
- `records`: the dataclasses from the settings and each run to the `Fidelity` result.
- `summary`: `summarize` (numbers in, `Fidelity` out) and `model_agreement`.
- `plan`: which trials are retrained, with which seeds and steps.
- `store`: `FidelityStore`, the retrainings in ``DIR/fidelity/fidelity.sqlite``.
- `run`: `measure` and `measure_noise`, through the one run loop; `checked_rung`, which runs a check retrains.
- `persist`: ``DIR/fidelity.json`` and ``DIR/seed-noise.json``, and `noise_for_fit`.
- `text`: what `tinyscale fidelity` and `tinyscale fit` print.
"""

from tinyscale.evaluate.fidelity.persist import (FIDELITY_FILE, NOISE_CHOICES, NOISE_FILE, load_fidelity,
                                                 load_noise, noise_for_fit, save_fidelity, save_noise, stored_dict)
from tinyscale.evaluate.fidelity.plan import (DEFAULT_FACTOR, DEFAULT_NOISE_TRIALS, DEFAULT_RECIPES,
                                              DEFAULT_REPLICATES, FIDELITY_SEED_OFFSET, LONG_SLOT, SEED_SLOTS, Task,
                                              fidelity_seed, plan_runs, spread)
from tinyscale.evaluate.fidelity.records import (FIDELITY_FORMAT, NOISE_FORMAT, Fidelity, FidelitySettings,
                                                 ModelAgreement, RankPair, Run, SeedNoise, VersionedRecord)
from tinyscale.evaluate.fidelity.run import checked_rung, measure, measure_noise
from tinyscale.evaluate.fidelity.stats import (MIN_RECIPES, MIN_TRIALS, NoiseGroup, Signal, accuracy_signal,
                                               linear_trend, pooled_noise, quadratic_residuals, spearman,
                                               spearman_at_matched_c)
from tinyscale.evaluate.fidelity.store import STORE_NAME, FidelityStore, fidelity_dir
from tinyscale.evaluate.fidelity.summary import model_agreement, summarize
from tinyscale.evaluate.fidelity.text import (describe_stored, format_fidelity, format_model_agreement,
                                              not_measured_hint, stale_note)
from tinyscale.evaluate.fidelity.verdict import (ADVICE, BEYOND_NOISE_GOOD, BEYOND_NOISE_POOR, MATCHED_GOOD,
                                                 RHO_FBNETV3, RHO_GOOD, RHO_POOR, SLOPE_T_MIN, VERDICTS, judge)

__all__ = [
    "ADVICE", "BEYOND_NOISE_GOOD", "BEYOND_NOISE_POOR", "DEFAULT_FACTOR", "DEFAULT_NOISE_TRIALS", "DEFAULT_RECIPES",
    "DEFAULT_REPLICATES", "FIDELITY_FILE", "FIDELITY_FORMAT", "FIDELITY_SEED_OFFSET",
    "LONG_SLOT", "MATCHED_GOOD", "MIN_RECIPES", "MIN_TRIALS", "NOISE_CHOICES", "NOISE_FILE", "NOISE_FORMAT",
    "RHO_FBNETV3", "RHO_GOOD", "RHO_POOR", "SEED_SLOTS", "SLOPE_T_MIN", "STORE_NAME", "VERDICTS", "Fidelity",
    "FidelitySettings", "FidelityStore", "ModelAgreement", "NoiseGroup", "RankPair", "Run", "SeedNoise", "Signal",
    "Task", "VersionedRecord", "accuracy_signal", "checked_rung", "describe_stored", "fidelity_dir", "fidelity_seed",
    "format_fidelity", "format_model_agreement", "judge", "linear_trend", "load_fidelity", "load_noise",
    "measure", "measure_noise", "model_agreement", "noise_for_fit", "not_measured_hint", "plan_runs",
    "pooled_noise", "quadratic_residuals", "save_fidelity", "save_noise", "spearman", "spearman_at_matched_c",
    "spread", "stale_note", "stored_dict", "summarize",
]
