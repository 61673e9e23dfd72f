"""Latency as a budget: honest measurement, a per-part lookup table of a device, and solving
for a target latency. Answers are microseconds.

Modules, in the order a table is made and used:
    timing        timed runs and their median/IQR (`LatencyStats`); fixed thread counts
    device        what a latency was measured on (`DeviceProfile`)
    parts         a network as the parts a table times (`Part`, `recipe_parts`)
    part_modules  the torch module of one part (loads torch; imported when a part is built)
    measure       timing networks and parts on this machine (`Measurer`)
    calibration   from the sum of parts to whole networks (`Calibration`: linear or gp)
    table         the device table: lookup, estimates, prediction, files (`LatencyTable`)
    grids         which recipes a table is built from, and `build_table`
    solve         recipes that meet a latency target; MnasNet's soft reward
    study         a study's device table and its trials' latencies
"""

from tinyscale.latency.calibration import CORRECTIONS, MIN_GP_POINTS, Calibration, CalibrationPoint
from tinyscale.latency.device import (ENGINES, FAMILY, FORMAT_VERSION, DeviceProfile, check_engine, cpu_model,
                                      engine_version)
from tinyscale.latency.grids import (BOX_DEPTHS, CALIBRATION_DEPTHS, DEFAULT_CALIBRATION, GRID_DEPTH, GRID_SIDES,
                                     GRID_WIDTHS, GRIDS, SMALL_GRID_SIDES, SMALL_GRID_WIDTHS, box_recipes, build_table,
                                     calibration_recipes, grid_recipes)
from tinyscale.latency.measure import NETWORK_REPEATS, NETWORK_WARMUP, PART_REPEATS, PART_WARMUP, Measurer
from tinyscale.latency.parts import Part, parts_of, recipe_parts
from tinyscale.latency.solve import MNASNET_BETA, check_latency_ms, mnasnet_reward, solve_latency, solve_width_latency
from tinyscale.latency.study import LATENCY_FILE, keep_with_study, study_table, trial_latencies
from tinyscale.latency.table import ESTIMATE_NEIGHBOURS, FORMAT, Entry, LatencyTable, Prediction
from tinyscale.latency.timing import (LatencyStats, check_count, ort_session_options, summarize_samples, time_runs,
                                      torch_threads)

__all__ = [
    "BOX_DEPTHS", "CALIBRATION_DEPTHS", "CORRECTIONS", "DEFAULT_CALIBRATION", "ENGINES", "ESTIMATE_NEIGHBOURS",
    "FAMILY", "FORMAT", "FORMAT_VERSION", "GRIDS", "GRID_DEPTH", "GRID_SIDES", "GRID_WIDTHS", "MIN_GP_POINTS",
    "MNASNET_BETA", "NETWORK_REPEATS", "NETWORK_WARMUP", "PART_REPEATS", "PART_WARMUP", "SMALL_GRID_SIDES",
    "SMALL_GRID_WIDTHS", "LATENCY_FILE", "Calibration", "CalibrationPoint", "DeviceProfile", "Entry",
    "LatencyStats", "LatencyTable", "Measurer", "Part", "Prediction", "box_recipes", "build_table",
    "calibration_recipes", "check_count", "check_engine", "check_latency_ms", "cpu_model", "engine_version",
    "grid_recipes", "keep_with_study", "mnasnet_reward", "ort_session_options", "parts_of", "recipe_parts",
    "solve_latency", "solve_width_latency", "study_table", "summarize_samples", "time_runs", "torch_threads",
    "trial_latencies",
]
