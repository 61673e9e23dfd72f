"""Head-to-head at matched FLOPs (or matched latency): the study's GP recipe against published
scaling rules and single-axis scaling, every strategy trained with the same trainer, budget,
data and seeds. The modules follow the data flow:

- `strategies`: the strategy registry (the GP strategies, and the baselines from
  `baselines.registry`), what a target measures (`TargetMeasure`: MACs ratio c or predicted ms),
  and `strategy_recipe`, a solver's `StepSolution` as a strategy's recipe.
- `settings`: what a comparison asks (`CompareSettings`), parsed and defaulted from a study.
- `build`: one strategy's recipe at one target, matched or bracketed by two steps (`BuiltRecipe`).
- `store`: the SQLite store of built recipes and trained cells, resumable (`CompareStore`).
- `results`: the cells folded into a `Comparison`, with margins paired by seed.
- `run`: `run_comparison` (through `tinyscale.study.runner.run_jobs`) and `load_comparison`.
- `tables`: the comparison as dicts, CSV and Markdown.
- `plots`: the figure and the report files.
"""

from tinyscale.evaluate.compare.build import BuiltRecipe, build_recipe, strategy_builders
from tinyscale.evaluate.compare.plots import (
    CHROME_CANDIDATES,
    STRATEGY_COLORS,
    ReportPaths,
    comparison_figure,
    write_png,
    write_report,
)
from tinyscale.evaluate.compare.results import (
    Bracket,
    Comparison,
    ComparisonRow,
    Margin,
    MeanMargin,
    assemble_comparison,
    interpolation_weight,
)
from tinyscale.evaluate.compare.run import load_comparison, run_comparison
from tinyscale.evaluate.compare.settings import (
    DEFAULT_RATIOS,
    STEP_FACTOR,
    CompareSettings,
    default_latency_targets,
    default_settings,
    default_steps,
    parse_ratios,
    parse_strategies,
    read_study_config,
    settings_from_dict,
    settings_to_dict,
)
from tinyscale.evaluate.compare.store import (
    BRACKETS,
    COMPARE_DIR,
    SCHEMA_VERSION,
    STORE_NAME,
    Cell,
    CompareStore,
    compare_dir,
)
from tinyscale.evaluate.compare.strategies import (
    BUDGETS,
    DEFAULT_STRATEGIES,
    MACS,
    MATCH_TOLERANCE,
    REGISTRY,
    STRATEGIES,
    STRATEGY_LABELS,
    Strategy,
    StrategyBuilder,
    StrategyRecipe,
    TargetMeasure,
    strategy_recipe,
)
from tinyscale.evaluate.compare.tables import comparison_csv, comparison_markdown, comparison_table, margin_table

__all__ = [
    "BRACKETS", "BUDGETS", "CHROME_CANDIDATES", "COMPARE_DIR", "DEFAULT_RATIOS", "DEFAULT_STRATEGIES", "MACS",
    "MATCH_TOLERANCE", "REGISTRY", "SCHEMA_VERSION", "STEP_FACTOR", "STORE_NAME", "STRATEGIES", "STRATEGY_COLORS",
    "STRATEGY_LABELS", "Bracket", "BuiltRecipe", "Cell", "CompareSettings", "CompareStore", "Comparison",
    "ComparisonRow", "Margin", "MeanMargin", "ReportPaths", "Strategy", "StrategyBuilder", "StrategyRecipe",
    "TargetMeasure", "assemble_comparison", "build_recipe", "compare_dir", "comparison_csv", "comparison_figure",
    "comparison_markdown", "comparison_table", "default_latency_targets", "default_settings", "default_steps",
    "interpolation_weight", "load_comparison", "margin_table", "parse_ratios", "parse_strategies",
    "read_study_config", "run_comparison", "settings_from_dict", "settings_to_dict", "strategy_builders",
    "strategy_recipe", "write_png", "write_report",
]
