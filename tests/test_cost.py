"""The closed-form cost: published reference numbers, and exact agreement with the traced count
(FlopCounterMode forward ÷ 2) and sum(p.numel()) of the built module on random recipes."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from baselines.efficientnet import EFFICIENTNET_B, efficientnet_b
from baselines.tinynet import TINYNET, tinynet_recipe
from tinyscale.space.cost import baseline_macs, cost, macs, params, ratio
from tinyscale.space.model import build_model
from tinyscale.space.recipe import Recipe

# Published numbers (reference/scaling.md), written out here rather than read from the code.
B0_MACS = 385_814_752
B0_PARAMS = 5_288_548
TINYNET_A_PARAMS = 6_187_972
TINYNET_PUBLISHED = {  # name: (input px, MACs)
    "tinynet-a": (192, 339e6),
    "tinynet-b": (188, 202e6),
    "tinynet-c": (184, 100e6),
    "tinynet-d": (152, 52e6),
    "tinynet-e": (106, 24e6),
}
# EfficientNet paper (Tan & Le 2019, Table 2): params (M), FLOPs (B); resolutions from the TF table.
B_PUBLISHED = {
    "b1": (240, 7.8, 0.70), "b2": (260, 9.2, 1.0), "b3": (300, 12, 1.8), "b4": (380, 19, 4.2),
    "b5": (456, 30, 9.9), "b6": (528, 43, 19), "b7": (600, 66, 37),
}


@pytest.mark.parametrize("rules", ["tinynet", "efficientnet"])
def test_b0_reference(rules):
    rc = Recipe(rules=rules)
    assert cost(rc).macs == B0_MACS
    assert cost(rc).params == B0_PARAMS
    assert macs(rc) == B0_MACS and params(rc) == B0_PARAMS
    assert baseline_macs(Recipe(0.5, 0.5, 0.5, rules=rules)) == B0_MACS
    assert ratio(rc) == 1.0


def test_tinynet_a_params():
    assert params(Recipe(0.86, 1.0, 1.2)) == TINYNET_A_PARAMS


@pytest.mark.parametrize("name", sorted(TINYNET_PUBLISHED))
def test_tinynet_published_macs_within_2_percent(name):
    px, published = TINYNET_PUBLISHED[name]
    rc = tinynet_recipe(name)
    assert rc.resolution == px
    assert abs(macs(rc) / published - 1) < 0.02
    assert TINYNET[name].resolution == px and TINYNET[name].macs == published


@pytest.mark.parametrize("name", sorted(B_PUBLISHED))
def test_efficientnet_b_table(name):
    px, params_m, flops_b = B_PUBLISHED[name]
    rc = efficientnet_b(name)
    assert rc.resolution == px == EFFICIENTNET_B[name].resolution
    assert abs(params(rc) / (params_m * 1e6) - 1) < 0.025  # the paper rounds to 2 digits
    # The paper's FLOPs are rounded and counted slightly differently for the large models.
    assert abs(macs(rc) / (flops_b * 1e9) - 1) < 0.06


def test_classes_only_change_the_classifier():
    a, b = cost(Recipe(num_classes=1000)), cost(Recipe(num_classes=10))
    assert a.macs - b.macs == 1280 * 990
    assert a.params - b.params == 1281 * 990


def test_ratio_is_relative_to_the_baseline_at_the_same_base_resolution():
    small = Recipe(r=0.5, base_resolution=32, num_classes=10)
    assert ratio(small) == macs(small) / macs(Recipe(base_resolution=32, num_classes=10))


# --- the closed form against the traced module ---------------------------------------------------

def traced(recipe: Recipe, device: str = "cpu") -> tuple[int, int]:
    """(FlopCounterMode forward FLOPs ÷ 2, sum of parameter numels) of the built module.

    On the "meta" device the module is built and run on shapes only; the count must not
    depend on the device (checked below).
    """
    torch.manual_seed(0)
    with torch.device(device):
        model = build_model(recipe).eval()
        x = torch.zeros(1, 3, recipe.resolution, recipe.resolution)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2, sum(p.numel() for p in model.parameters())


def test_traced_b0_at_224():
    assert traced(Recipe()) == (B0_MACS, B0_PARAMS)


def test_traced_tinynet_a_params():
    assert traced(tinynet_recipe("tinynet-a"))[1] == TINYNET_A_PARAMS


@pytest.mark.parametrize(
    "recipe",
    [
        Recipe(0.5, 0.3, 0.4, base_resolution=32, num_classes=10),
        Recipe(1.3, 1.1, 1.25, rules="efficientnet", base_resolution=32, num_classes=10),
        Recipe(0.3, 0.05, 0.1, base_resolution=32, num_classes=2),  # 9 px, all channels at minimum
        Recipe(0.9, 0.62, 0.625, rules="tinynet", base_resolution=64, num_classes=100),
    ],
)
def test_traced_count_does_not_depend_on_device(recipe):
    c = cost(recipe)
    assert traced(recipe, "cpu") == (c.macs, c.params) == traced(recipe, "meta")


def log_uniform(lo: float, hi: float):
    return st.floats(math.log(lo), math.log(hi)).map(math.exp)


@st.composite
def small_recipes(draw):
    # Small inputs keep the trace fast; widths/depths span the whole useful range and both
    # rule sets, so every rounding branch (bump, half-even, ceil, head max) is exercised.
    base = draw(st.sampled_from([16, 24, 32, 40]))
    r = draw(st.floats(8 / base, 2.0))
    return Recipe(
        r=r,
        w=draw(log_uniform(0.05, 1.6)),
        d=draw(log_uniform(0.05, 1.8)),
        rules=draw(st.sampled_from(["tinynet", "efficientnet"])),
        base_resolution=base,
        num_classes=draw(st.integers(2, 1000)),
    )


@settings(max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(small_recipes())
def test_closed_form_equals_traced_count(recipe):
    c = cost(recipe)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny inputs: thread start-up would dominate
    try:
        assert (c.macs, c.params) == traced(recipe)
    finally:
        torch.set_num_threads(threads)
