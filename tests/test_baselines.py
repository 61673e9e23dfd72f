"""Baselines: EfficientNet compound scaling (φ solved), the B0..B7 table, the dWr α-rule (fast,
uniform), single-axis scaling and the published TinyNets, all through the registry the CLI and
the compare stage use."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _step_oracle import achievable, check_closest_step

from baselines import (
    PUBLISHED, SOLVED, STRATEGIES, ScaledRecipe, compound_recipe, depth_only, dwr_recipe, efficientnet_b,
    fast, format_scaling_table, resolution_only, scale, scaling_table, tinynet, uniform, width_only,
)
from baselines.dwr import dwr_at, dwr_exponents, log_s_range
from baselines.efficientnet import compound_at_phi, phi_range
from tinyscale.space.arch import build_architecture
from tinyscale.space.cost import macs, ratio
from tinyscale.space.recipe import Recipe
from tinyscale.space.width import MAX_RATIO

C_GRID = [float(c) for c in np.geomspace(0.02, 4.0, 20)]


def test_registry_names():
    assert set(STRATEGIES) == {"efficientnet", "uniform", "fast", "width", "depth", "resolution",
                               "tinynet-a", "tinynet-b", "tinynet-c", "tinynet-d", "tinynet-e"}
    assert set(SOLVED) | set(PUBLISHED) == set(STRATEGIES)


# --- EfficientNet --------------------------------------------------------------------------------

def test_b_table_as_recipes():
    for name, (w, d, px) in {"b0": (1.0, 1.0, 224), "b3": (1.2, 1.4, 300), "b7": (2.0, 3.1, 600)}.items():
        rc = efficientnet_b(name)
        assert (rc.w, rc.d, rc.resolution, rc.rules) == (w, d, px, "efficientnet")
    assert efficientnet_b("B1", base_resolution=32, num_classes=10).resolution == 34  # int(32·240/224)
    with pytest.raises(ValueError, match="EfficientNet model must be one of"):
        efficientnet_b("b8")


def test_phi_range_limits():
    lo, hi = phi_range()
    assert compound_at_phi(lo).resolution == 8  # the minimum input size
    with pytest.raises(ValueError):
        compound_at_phi(lo - 0.01)
    assert compound_at_phi(hi).d == pytest.approx(8.0)  # depth hits the multiplier limit first
    with pytest.raises(ValueError):
        compound_at_phi(hi + 0.01)


@pytest.fixture(scope="module")
def compound_ratios():
    # φ in [-12, 3] covers c in [0.02, 4] (c = 0.02 is near φ = -7.8, c = 4 near φ = 1.8).
    return achievable(compound_at_phi, np.linspace(-12.0, 3.0, 8000))


@pytest.mark.parametrize("c", C_GRID)
def test_compound_grid(c, compound_ratios):
    s = compound_recipe(c)
    assert s.strategy == "efficientnet" and s.target == c and s.recipe.rules == "efficientnet"
    r, w, d = 1.15**s.phi, 1.1**s.phi, 1.2**s.phi
    assert (s.recipe.r, s.recipe.w, s.recipe.d) == pytest.approx((r, w, d), rel=1e-12)
    check_closest_step(c, s.recipe, s.achieved, s.ratio_below, s.ratio_above, compound_ratios)


def test_compound_phi_is_monotone_in_c():
    phis = [compound_recipe(c).phi for c in C_GRID]
    assert phis == sorted(phis)
    assert compound_recipe(1.0).phi == 0.0 and compound_recipe(1.0).achieved == 1.0


@pytest.mark.parametrize("name, phis", [("b2", (1.0, 1.0, 1.0)), ("b3", (1.91, 1.85, 2.09)),
                                         ("b4", (3.53, 3.22, 3.78))])
def test_compound_matches_the_b_table(name, phis):
    # At a published model's counted ratio, the solved φ lies near the φ its (w, d, r) imply
    # (each axis gives its own: log1.1 w, log1.2 d, log1.15 r). B2 is φ = 1 (w 1.1, d 1.2).
    s = compound_recipe(ratio(efficientnet_b(name)))
    assert min(phis) - 0.25 <= s.phi <= max(phis) + 0.25
    assert abs(s.relative_error) < 0.05


def test_compound_at_2_overshoots_the_nominal_rule():
    # Nominally FLOPs ≈ 2^φ, so c = 2 would be φ = 1. The counted cost grows faster (ceil(n·d)
    # adds a block to every 1-block stage as soon as d > 1), so c = 2 is reached near φ = 0.5,
    # where B1 (d = 1.1 = 1.2^0.52) also sits at ratio 1.78.
    s = compound_recipe(2.0)
    assert 0.3 < s.phi < 0.8
    assert abs(s.relative_error) < 0.03
    assert 1.7 < ratio(efficientnet_b("b1")) < 1.9


@pytest.mark.parametrize("c", [0.5, 0.25, 0.125, 0.0625])
def test_compound_below_one(c, compound_ratios):
    # Within 2 % wherever an achievable step lies within 2 %. Where none does, the reason is the
    # ceil rule: stages with equal repeats gain a block at the same φ (d = 1/3: both 3-block
    # stages; d = 1/2: both 2-block stages and the 4-block stage), so the cost jumps by more
    # than 4 % there; then the closer of the two bracketing steps is taken.
    s = compound_recipe(c)
    near = [x for x in compound_ratios if abs(x / c - 1) <= 0.02]
    if near:
        assert abs(s.relative_error) <= 0.02
    else:
        assert s.ratio_above / s.ratio_below - 1 > 0.04
        assert abs(s.achieved - c) == min(c - s.ratio_below, s.ratio_above - c)


def test_compound_at_small_base_resolution():
    s = compound_recipe(0.3, base_resolution=32, num_classes=10)
    assert s.recipe.base_resolution == 32 and s.recipe.num_classes == 10
    assert s.ratio_below <= 0.3 <= s.ratio_above


def test_compound_out_of_reach():
    lo, _ = phi_range()
    floor = ratio(compound_at_phi(lo))
    with pytest.raises(ValueError, match=r"out of reach for EfficientNet compound scaling.*8 px minimum"):
        compound_recipe(floor / 2)
    with pytest.raises(ValueError, match="out of reach"):
        compound_recipe(ratio(compound_at_phi(phi_range()[1])) * 1.01)
    with pytest.raises(ValueError, match="must be between"):
        compound_recipe(1e7)


# --- dWr: fast (α = 0.8) and uniform (α = 1/3) -----------------------------------------------------

# The paper's exponents, written out (not taken from the code): d = s^((1-α)/2), w = s^(α/2),
# r = s^((1-α)/4). Uniform: d = s^(1/3), w = r = s^(1/6). Fast (α = 0.8): d = s^0.1, w = s^0.4, r = s^0.05.
DWR = {"uniform": (uniform, 1 / 3, (1 / 6, 1 / 6, 1 / 3)), "fast": (fast, 0.8, (0.05, 0.4, 0.1))}
# ln s scanned by the step oracle: covers C_GRID for both (c = 0.02 needs ln s ≈ -6.3 uniform,
# -15.3 fast; c = 4 about 1.2 and 1.5).
DWR_SCAN = {"uniform": np.linspace(-8.0, 2.5, 8000), "fast": np.linspace(-17.0, 2.5, 12000)}


@pytest.mark.parametrize("alpha", [0.05, 1 / 3, 0.5, 0.8, 0.95])
def test_dwr_exponents_split_the_factor(alpha):
    e_r, e_w, e_d = dwr_exponents(alpha)
    assert 2 * e_r + 2 * e_w + e_d == pytest.approx(1.0, abs=1e-15)  # d·w²·r² = s
    assert e_w == pytest.approx(alpha / 2, abs=1e-15) and e_d == pytest.approx(2 * e_r, abs=1e-15)


def test_alpha_one_third_is_uniform():
    assert dwr_exponents(1 / 3) == pytest.approx(DWR["uniform"][2], abs=1e-15)
    assert dwr_exponents(0.8) == pytest.approx(DWR["fast"][2], abs=1e-15)
    for c in (0.07, 0.3, 1.7):
        u, a = uniform(c), dwr_recipe(c, 1 / 3)
        assert u.recipe == a.recipe and (u.achieved, u.ratio_below, u.ratio_above) == (a.achieved, a.ratio_below, a.ratio_above)
        assert u.strategy == "uniform" and a.strategy == "dwr(alpha=0.333333)"
        assert fast(c).recipe == dwr_recipe(c, 0.8).recipe and fast(c).strategy == "fast"


@pytest.mark.parametrize("rule", sorted(DWR))
def test_dwr_grid(rule):
    solve, alpha, (e_r, e_w, e_d) = DWR[rule]
    ratios = achievable(lambda t: dwr_at(t, alpha), DWR_SCAN[rule])
    for c in C_GRID:
        s = solve(c)
        assert s.strategy == rule and s.target == c and s.recipe.rules == "tinynet"
        for recipe in (s.recipe, s.recipe_below, s.recipe_above):
            # The stated proportions in log space, before any rounding (the recipe's multipliers).
            log_r, log_w, log_d = math.log(recipe.r), math.log(recipe.w), math.log(recipe.d)
            assert log_w == pytest.approx(e_w / e_r * log_r, abs=1e-12)
            assert log_d == pytest.approx(e_d / e_r * log_r, abs=1e-12)
        # ... and they are the rule at the reported nominal factor s.
        assert (s.recipe.r, s.recipe.w, s.recipe.d) == pytest.approx((s.s**e_r, s.s**e_w, s.s**e_d), rel=1e-12)
        check_closest_step(c, s.recipe, s.achieved, s.ratio_below, s.ratio_above, ratios)
        # The bracketing recipes build exactly the reported steps; the answer is one of them.
        assert ratio(s.recipe_below) == s.ratio_below and ratio(s.recipe_above) == s.ratio_above
        assert s.recipe in (s.recipe_below, s.recipe_above)


@pytest.mark.parametrize("rule", sorted(DWR))
@pytest.mark.parametrize("c", [0.0625, 0.125, 0.25, 0.5, 1.5])
def test_dwr_at_the_study_base(rule, c):
    # At a 32 px base the steps are coarse (whole pixels of a 10-30 px input), yet c stays
    # bracketed and the answer is the closer step.
    solve, alpha, _ = DWR[rule]
    s = solve(c, base_resolution=32, num_classes=10)
    assert s.recipe.base_resolution == 32 and s.recipe.num_classes == 10
    assert s.ratio_below <= c <= s.ratio_above
    assert abs(s.achieved - c) == pytest.approx(min(c - s.ratio_below, s.ratio_above - c), abs=1e-15)
    assert ratio(s.recipe_below) == s.ratio_below and ratio(s.recipe_above) == s.ratio_above


def test_dwr_rules_can_be_changed():
    s = fast(0.25, rules="efficientnet")
    assert s.recipe.rules == "efficientnet" and s.ratio_below <= 0.25 <= s.ratio_above
    assert s.recipe != fast(0.25).recipe  # ceil'd repeats, scaled stem/head: another network


def test_dwr_out_of_reach():
    for rule, (solve, alpha, _) in DWR.items():
        lo, hi = log_s_range(alpha)
        assert dwr_at(lo, alpha).resolution == 8
        with pytest.raises(ValueError):
            dwr_at(lo - 0.01, alpha)
        floor, cap = ratio(dwr_at(lo, alpha)), ratio(dwr_at(hi, alpha))
        with pytest.raises(ValueError, match=rf"out of reach for {rule} scaling.*8 px minimum"):
            solve(floor * 0.99)
        with pytest.raises(ValueError, match="out of reach"):
            solve(cap * 1.01)
        assert solve(floor).achieved == floor  # the ends themselves are reachable
    # What stops each rule growing: depth (s^(1/3)) for uniform, width (s^0.4) for fast.
    # (Just above each cap: far beyond, every command refuses c > MAX_RATIO before any rule.)
    caps = {rule: ratio(dwr_at(log_s_range(alpha)[1], alpha)) for rule, (_, alpha, _) in DWR.items()}
    with pytest.raises(ValueError, match=r"d=8\)"):
        uniform(caps["uniform"] * 1.01)
    with pytest.raises(ValueError, match=r"w=8\)"):
        fast(caps["fast"] * 1.01)
    with pytest.raises(ValueError, match="must be between"):
        fast(MAX_RATIO * 1.01)
    for alpha in (0.0, 1.0, -0.2, math.nan, "0.5", True):
        with pytest.raises(ValueError, match="alpha must be"):
            dwr_recipe(0.5, alpha)


@pytest.mark.parametrize("rule", SOLVED)
def test_every_solved_rule_reports_its_bracketing_recipes(rule):
    for c in (0.5, 0.7, 1.3):  # depth and resolution alone stop near 0.44 and 0.48 at this base
        s = scale(rule, c, base_resolution=32, num_classes=10)
        assert ratio(s.recipe_below) == s.ratio_below <= c <= s.ratio_above == ratio(s.recipe_above)
        assert s.recipe in (s.recipe_below, s.recipe_above)


# --- single axis ---------------------------------------------------------------------------------

AXES = {
    "width": (width_only, "w", lambda t, v: t.with_(w=v), np.geomspace(0.009, 8.0, 5000)),
    "depth": (depth_only, "d", lambda t, v: t.with_(d=v), np.geomspace(0.01, 8.0, 5000)),
    # Resolution moves in whole pixels: enumerate every input size exactly.
    "resolution": (resolution_only, "r", lambda t, v: t.with_(r=v), [px / 224 for px in range(8, 1793)]),
}


@pytest.mark.parametrize("rules", ["tinynet", "efficientnet"])
@pytest.mark.parametrize("axis", sorted(AXES))
def test_single_axis_grid(axis, rules):
    solve, field, make, knobs = AXES[axis]
    template = Recipe(rules=rules)
    ratios = achievable(lambda v: make(template, v), knobs)
    for c in C_GRID:
        if not ratios[0] <= c <= ratios[-1]:
            with pytest.raises(ValueError, match="out of reach"):
                solve(c, rules=rules)
            continue
        s = solve(c, rules=rules)
        assert s.strategy == axis and s.recipe.rules == rules
        # Only the one axis moved.
        assert {k for k in ("r", "w", "d") if getattr(s.recipe, k) != 1.0} <= {field}
        check_closest_step(c, s.recipe, s.achieved, s.ratio_below, s.ratio_above, ratios)


def test_single_axis_defaults_to_tinynet_rules():
    assert width_only(0.5).recipe.rules == depth_only(0.5).recipe.rules == resolution_only(0.5).recipe.rules == "tinynet"


def test_depth_alone_cannot_go_below_one_block_per_stage():
    one_block = Recipe(d=0.01)
    assert build_architecture(one_block).depths == (1,) * 7
    assert ratio(one_block) == pytest.approx(0.449, abs=1e-3)
    with pytest.raises(ValueError, match=r"out of reach for depth-only.*1 block per stage"):
        depth_only(0.4)
    assert depth_only(ratio(one_block)).achieved == ratio(one_block)


def test_resolution_alone_stops_at_the_minimum_input():
    with pytest.raises(ValueError, match=r"out of reach for resolution-only.*8 px"):
        resolution_only(0.01)
    s = resolution_only(ratio(Recipe(r=8 / 224)))
    assert s.recipe.resolution == 8
    # Short r that still gives the exact pixel count (0.68 -> 152 px, like TinyNet-D).
    assert resolution_only(ratio(Recipe(r=0.68))).recipe.r == 0.68


# --- TinyNet -------------------------------------------------------------------------------------

def test_tinynet_published_results():
    for name in PUBLISHED:
        s = tinynet(name)
        assert s.target is None and s.relative_error == 0.0
        assert s.achieved == s.ratio_below == s.ratio_above == ratio(s.recipe)
        assert s.recipe.rules == "tinynet"
    assert tinynet("E").recipe == tinynet("tinynet-e").recipe == Recipe(0.475, 0.51, 0.6)
    with pytest.raises(ValueError, match="TinyNet model must be one of"):
        tinynet("tinynet-f")


# --- registry ------------------------------------------------------------------------------------

def test_scale_dispatches_and_ignores_c_for_published():
    assert scale("width", 0.5) == width_only(0.5)
    assert scale("uniform", 0.5) == uniform(0.5) and scale("fast", 0.5, base_resolution=32, num_classes=10) == fast(
        0.5, base_resolution=32, num_classes=10)
    assert scale("efficientnet", 0.5, base_resolution=32, num_classes=10) == compound_recipe(0.5, 32, 10)
    assert scale("tinynet-c", 123.0) == scale("tinynet-c") == tinynet("tinynet-c")
    assert isinstance(scale("tinynet-a"), ScaledRecipe)


@pytest.mark.parametrize("rule", SOLVED)
@pytest.mark.parametrize("c", [0.0, -0.5, math.nan, math.inf, "0.5", True])
def test_invalid_targets_name_c(rule, c):
    with pytest.raises(ValueError, match="target ratio c"):
        scale(rule, c)


def test_scale_errors():
    with pytest.raises(ValueError, match="rule must be one of"):
        scale("mobilenet", 0.5)
    with pytest.raises(ValueError, match="needs a target ratio"):
        scale("depth")
    with pytest.raises(ValueError, match="num_classes"):
        scale("efficientnet", 0.5, num_classes=1)
    with pytest.raises(ValueError, match="base_resolution"):
        scale("resolution", 0.5, base_resolution=0)
    with pytest.raises(ValueError, match="base resolution 4"):
        scale("width", 0.5, base_resolution=4)


def test_to_dict():
    d = compound_recipe(0.5).to_dict()
    assert set(d) == {"strategy", "target", "achieved", "ratio_below", "ratio_above", "phi", "s", "recipe",
                      "recipe_below", "recipe_above"}
    assert Recipe.from_dict(d["recipe"]) == compound_recipe(0.5).recipe
    assert ratio(Recipe.from_dict(d["recipe_below"])) == d["ratio_below"]
    assert ratio(Recipe.from_dict(d["recipe_above"])) == d["ratio_above"]
    assert fast(0.5).to_dict()["s"] == fast(0.5).s and tinynet("a").to_dict()["recipe_below"] is None


# --- the scaling table ---------------------------------------------------------------------------

def test_default_table_groups_by_tinynet_ratio():
    rows = scaling_table()
    assert len(rows) == 5 * (1 + len(SOLVED))
    for lead in rows[:: 1 + len(SOLVED)]:
        assert lead.strategy in PUBLISHED and lead.group == lead.scaled.achieved
    unreachable = [(r.strategy, round(r.group, 3)) for r in rows if r.scaled is None]
    assert ("depth", 0.063) in unreachable and all(r.error for r in rows if r.scaled is None)
    text = format_scaling_table(rows)
    assert "tinynet-e" in text and "out of reach" in text and "published" in text
    assert len(text.splitlines()) == 2 + len(rows) + 4  # header, rule, rows, blank lines between groups


def test_table_at_given_ratios():
    rows = scaling_table([0.5, 2.0], strategies=("efficientnet", "resolution"))
    assert [(r.group, r.strategy) for r in rows] == [(0.5, "efficientnet"), (0.5, "resolution"),
                                                     (2.0, "efficientnet"), (2.0, "resolution")]
    assert rows[0].to_dict()["macs"] == macs(compound_recipe(0.5).recipe)
    assert rows[0].to_dict()["achieved"] == compound_recipe(0.5).achieved
