"""The sampler: recipes inside the window and ranges, distinct networks, seeded and prefix-stable."""

from __future__ import annotations

import math

import pytest

from tinyscale.space.cost import ratio
from tinyscale.study.samplers.base import architecture_key, iter_recipes, sample_recipes
from tinyscale.study.trial import StudyConfig


@pytest.mark.parametrize("sampling", ["sobol", "random"])
@pytest.mark.parametrize("rules,base", [("tinynet", 32), ("efficientnet", 224)])
def test_recipes_fall_inside_window_and_ranges(sampling, rules, base):
    cfg = StudyConfig(data="generated", rules=rules, base_resolution=base, window=(0.1, 0.6),
                      r_range=(0.4, 1.0), d_range=(0.5, 1.2), sampling=sampling, seed=7)
    recipes = sample_recipes(cfg, 25)
    assert len(recipes) == 25
    for rec in recipes:
        assert 0.1 <= ratio(rec) <= 0.6
        # r is stored as pixels/base: the pixel count comes from a draw in [0.4, 1.0].
        assert math.floor(0.4 * base) <= rec.resolution <= base
        assert rec.r == rec.resolution / base
        assert 0.5 <= rec.d <= 1.2
        assert (rec.rules, rec.base_resolution, rec.num_classes) == (rules, base, 10)
    assert len({architecture_key(r) for r in recipes}) == 25


def test_log_uniform_spread_covers_the_window():
    cfg = StudyConfig(data="generated", window=(0.05, 1.0), seed=1)
    ratios = sorted(ratio(r) for r in sample_recipes(cfg, 40))
    # Log-uniform over a 20x window: both decades get a fair share of the samples.
    below = sum(c < math.sqrt(0.05) for c in ratios)
    assert 10 <= below <= 30
    assert ratios[0] < 0.08 and ratios[-1] > 0.6


def test_seeded_reproducible_and_prefix_stable():
    cfg = StudyConfig(data="generated", seed=11)
    a = sample_recipes(cfg, 12)
    assert sample_recipes(cfg, 12) == a
    assert sample_recipes(cfg, 5) == a[:5]
    assert sample_recipes(cfg, 4, start=8) == a[8:12]
    other = sample_recipes(StudyConfig(data="generated", seed=12), 12)
    assert other != a


def test_tiny_space_runs_out_with_clear_error():
    # At r fixed to one pixel count and d to one depth, only the width varies: a narrow window
    # holds a handful of distinct networks and the sampler must say so rather than loop.
    cfg = StudyConfig(data="generated", window=(0.2, 0.22), r_range=(0.5, 0.5), d_range=(1.0, 1.0))
    with pytest.raises(ValueError, match="too few distinct networks"):
        list(iter_recipes(cfg))


@pytest.mark.parametrize("field,value,msg", [
    ("window", (0.5, 0.1), "window must be"),
    ("r_range", (0.0, 1.0), "r_range must be"),
    ("d_range", (0.5, 20.0), "d must be at most"),
    ("sampling", "grid", "sampling must be one of"),
    ("r_range", (0.1, 1.0), "needs at least 8 px"),
])
def test_bad_space_is_a_clear_error(field, value, msg):
    cfg = StudyConfig(data="generated", **{field: value})
    with pytest.raises(ValueError, match=msg):
        sample_recipes(cfg, 1)
