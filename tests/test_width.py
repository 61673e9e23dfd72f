"""The width solver against the counted cost: grid of c in [0.02, 4], bracketing, reach, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _step_oracle import achievable, check_closest_step

from baselines.tinynet import TINYNET, tinynet_recipe
from tinyscale.space.arch import build_architecture
from tinyscale.space.cost import macs, ratio
from tinyscale.space.recipe import Recipe
from tinyscale.space.width import W_MAX, W_MIN, reachable_ratios, solve_width

C_GRID = [float(c) for c in np.geomspace(0.02, 4.0, 24)]
CONTEXTS = [  # (r, d, rules, base resolution, classes)
    (1.0, 1.0, "tinynet", 224, 1000),
    (0.5, 0.5, "efficientnet", 224, 1000),
    (1.3, 1.5, "tinynet", 224, 1000),
    (0.7, 0.6, "tinynet", 32, 10),
]


@pytest.mark.parametrize("r, d, rules, base, classes", CONTEXTS)
def test_grid_of_targets(r, d, rules, base, classes):
    template = Recipe(r=r, d=d, rules=rules, base_resolution=base, num_classes=classes)
    ratios = achievable(lambda w: template.with_(w=w), np.geomspace(W_MIN, W_MAX, 5000))
    lo, hi = reachable_ratios(r, d, rules=rules, base_resolution=base, num_classes=classes)
    assert lo == pytest.approx(ratios[0]) and hi == pytest.approx(ratios[-1])
    solved = 0
    for c in C_GRID:
        if not lo <= c <= hi:
            with pytest.raises(ValueError, match="out of reach"):
                solve_width(c, r, d, rules=rules, base_resolution=base, num_classes=classes)
            continue
        sol = solve_width(c, r, d, rules=rules, base_resolution=base, num_classes=classes)
        assert sol.target == c
        assert (sol.recipe.r, sol.recipe.d, sol.recipe.rules) == (r, d, rules)
        check_closest_step(c, sol.recipe, sol.achieved, sol.below, sol.above, ratios)
        assert sol.relative_error == pytest.approx(sol.achieved / c - 1)
        # Both steps come with the recipe that builds them (only w differs); one is the answer.
        assert ratio(sol.recipe_below) == sol.below and ratio(sol.recipe_above) == sol.above
        assert sol.recipe_below.with_(w=1.0) == sol.recipe_above.with_(w=1.0) == sol.recipe.with_(w=1.0)
        assert sol.recipe in (sol.recipe_below, sol.recipe_above)
        assert len(repr(sol.recipe_below.w)) <= 8 and len(repr(sol.recipe_above.w)) <= 8  # short decimals
        solved += 1
    assert solved >= 10


@pytest.mark.parametrize("name", sorted(TINYNET))
def test_recovers_the_published_tinynet_networks(name):
    # Given the published (r, d) and its counted ratio, the solved width builds the same network.
    published = tinynet_recipe(name)
    sol = solve_width(ratio(published), published.r, published.d)
    assert macs(sol.recipe) == macs(published)
    assert build_architecture(sol.recipe).widths == build_architecture(published).widths
    assert len(repr(sol.recipe.w)) <= 6  # a short decimal, not 0.5398171...


def test_exact_hit_reports_equal_steps():
    sol = solve_width(1.0, 1.0, 1.0)
    assert sol.recipe.w == 1.0 and sol.achieved == sol.below == sol.above == 1.0
    assert sol.recipe_below == sol.recipe_above == sol.recipe


def test_reachable_ratios_bounds():
    lo, hi = reachable_ratios(1.0, 1.0)
    assert lo == ratio(Recipe(w=W_MIN)) and hi == ratio(Recipe(w=W_MAX))
    # TinyNet rules keep a 32-channel stem and a >= 1280 head, so width alone stops higher.
    assert lo > reachable_ratios(1.0, 1.0, rules="efficientnet")[0]


@pytest.mark.parametrize("c", [0.0, -1.0, math.nan, math.inf, -math.inf, "0.5", None, True])
def test_invalid_target(c):
    with pytest.raises(ValueError, match="target ratio c"):
        solve_width(c, 1.0, 1.0)


def test_out_of_reach_names_the_range():
    with pytest.raises(ValueError, match=r"c=0\.01 is out of reach .* from 0\.09"):
        solve_width(0.01, 1.0, 1.0)
    with pytest.raises(ValueError, match="out of reach"):
        solve_width(100.0, 1.0, 1.0)  # above what r = d = 1 reaches (about 56), below the absurd-target limit


@pytest.mark.parametrize(
    "kw, field",
    [({"r": 0.0}, "r"), ({"d": math.nan}, "d"), ({"rules": "x"}, "rules"),
     ({"base_resolution": 0}, "base_resolution"), ({"num_classes": 1}, "num_classes"), ({"r": 0.01}, "r=")],
)
def test_invalid_context(kw, field):
    args = {"r": 1.0, "d": 1.0, **kw}
    r, d = args.pop("r"), args.pop("d")
    with pytest.raises(ValueError, match=field):
        solve_width(0.5, r, d, **args)
