"""The study stage: sample recipes inside a FLOPs window, train each briefly, store every trial.

- `trial`: the records (`StudyConfig`, `Trial`) that flow from here to the fit stage.
- `plan`: a config resolved once (`StudyPlan`), and the demo's config.
- `samplers`: where the next recipes come from (sobol stream, botorch acquisition).
- `executors`: where runs train (this process, worker processes, Ray).
- `runner`: the one run loop every training command uses.
- `store`: the study directory (config.json, trials.sqlite, the lock).
- `driver`: `run_study`, the loop's study-shaped source and record.
"""

from tinyscale.study.driver import open_or_create, run_study
from tinyscale.study.plan import (DEMO_BUDGET_STEPS, DEMO_TRIALS, StudyPlan, check_data, data_spec, demo_config,
                                  resolve_data, trial_seed, uniform_demo_config)
from tinyscale.study.store import CONFIG_FILE, LOCK_FILE, TRIALS_FILE, Study, StudyLock, StudyProgress
from tinyscale.study.trial import StudyConfig, Trial

__all__ = [
    "CONFIG_FILE", "DEMO_BUDGET_STEPS", "DEMO_TRIALS", "LOCK_FILE", "TRIALS_FILE", "Study", "StudyConfig", "StudyLock",
    "StudyPlan", "StudyProgress", "Trial", "check_data", "data_spec", "demo_config", "open_or_create", "resolve_data",
    "run_study", "trial_seed", "uniform_demo_config",
]
