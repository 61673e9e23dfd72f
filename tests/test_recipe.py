"""Recipe semantics and validation: every invalid field raises a ValueError that names it."""

from __future__ import annotations

import math

import pytest

from tinyscale.space.recipe import Recipe, resolution_for


def test_defaults_are_the_unscaled_b0_under_tinynet_rules():
    rc = Recipe()
    assert (rc.r, rc.w, rc.d, rc.rules, rc.base_resolution, rc.num_classes) == (1.0, 1.0, 1.0, "tinynet", 224, 1000)
    assert rc.resolution == 224


@pytest.mark.parametrize(
    "r, base, px",
    [
        (0.86, 224, 192),  # TinyNet-A
        (0.84, 224, 188),  # TinyNet-B: 188.16 floors
        (0.825, 224, 184),  # TinyNet-C: 184.8 floors, not rounds
        (0.68, 224, 152),  # TinyNet-D: 152.32
        (0.475, 224, 106),  # TinyNet-E: 106.4
        (240 / 224, 224, 240),  # exact on paper: must not land one pixel short
        (600 / 224, 224, 600),
        (0.5, 32, 16),
        (0.99, 32, 31),  # 31.68 floors
        (1.0, 32, 32),
    ],
)
def test_resolution_is_floor_of_base_times_r(r, base, px):
    assert Recipe(r=r, base_resolution=base).resolution == px
    assert resolution_for(r, base) == px


def test_frozen_and_hashable():
    rc = Recipe(0.5, 0.6, 0.7)
    with pytest.raises(AttributeError):
        rc.r = 1.0  # type: ignore[misc]
    assert hash(rc) == hash(Recipe(0.5, 0.6, 0.7))


def test_baseline_keeps_context_and_resets_multipliers():
    rc = Recipe(0.5, 0.6, 0.7, rules="efficientnet", base_resolution=32, num_classes=10)
    assert rc.baseline() == Recipe(rules="efficientnet", base_resolution=32, num_classes=10)


def test_with_revalidates():
    rc = Recipe()
    assert rc.with_(w=0.5).w == 0.5
    with pytest.raises(ValueError, match="w must be positive"):
        rc.with_(w=-1.0)


def test_dict_round_trip():
    rc = Recipe(0.825, 0.54, 0.85, rules="efficientnet", base_resolution=32, num_classes=10)
    assert Recipe.from_dict(rc.to_dict()) == rc
    assert set(rc.to_dict()) == {"r", "w", "d", "rules", "base_resolution", "num_classes"}


def test_integer_multipliers_become_floats():
    rc = Recipe(r=1, w=2, d=1)
    assert isinstance(rc.w, float) and rc.w == 2.0


@pytest.mark.parametrize("field", ["r", "w", "d"])
@pytest.mark.parametrize(
    "value, words",
    [
        (0.0, "positive"),
        (-0.5, "positive"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (8.5, "at most"),
        (1e9, "at most"),
        ("1", "number"),
        (None, "number"),
        (True, "number"),
    ],
)
def test_invalid_multipliers_name_the_field(field, value, words):
    with pytest.raises(ValueError, match=rf"^{field} must .*{words}"):
        Recipe(**{field: value})


@pytest.mark.parametrize("rules", ["TinyNet", "timm", "", None, 1])
def test_invalid_rules(rules):
    with pytest.raises(ValueError, match="rules must be one of"):
        Recipe(rules=rules)


@pytest.mark.parametrize("value", [0, -224, 5000, 224.0, "224", True, None])
def test_invalid_base_resolution(value):
    with pytest.raises(ValueError, match="base_resolution"):
        Recipe(base_resolution=value)


@pytest.mark.parametrize("value", [0, 1, -10, 10.0, "10", False, 10**7])
def test_invalid_num_classes(value):
    with pytest.raises(ValueError, match="num_classes"):
        Recipe(num_classes=value)


def test_resolution_below_minimum_names_r_and_the_limit():
    with pytest.raises(ValueError, match=r"r=0\.03 gives a 6 px input.*at least 8 px"):
        Recipe(r=0.03)
    with pytest.raises(ValueError, match=r"r=0\.2 gives a 6 px input at base resolution 32"):
        Recipe(r=0.2, base_resolution=32)
    assert Recipe(r=8 / 224).resolution == 8  # exactly the minimum is fine
    with pytest.raises(ValueError, match="base resolution 4"):
        Recipe(base_resolution=4)  # even the baseline is below the minimum


def test_resolution_above_maximum():
    with pytest.raises(ValueError, match="at most 4096 px"):
        Recipe(r=7.0, base_resolution=1024)
