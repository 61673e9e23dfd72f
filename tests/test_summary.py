"""tinyscale.space.summary: what `tinyscale inspect` says about a recipe, checked against the
published numbers (/work/shared/reference/scaling.md) and values worked out by hand."""

from __future__ import annotations

import json

import pytest

from tinyscale.cli import main
from tinyscale.space.recipe import Recipe
from tinyscale.space.summary import format_summary, summarize

B0_DEPTHS = [1, 2, 2, 3, 3, 4, 1]
B0_WIDTHS = [16, 24, 40, 80, 112, 192, 320]
B0_MACS, B0_PARAMS = 385_814_752, 5_288_548  # exact, at 224 px and 1000 classes

# TinyNet-A..E: (r, w, d), input side and the published MACs (rounded to 1M in the README).
TINYNETS = {
    "A": ((0.86, 1.0, 1.2), 192, 339e6),
    "B": ((0.84, 0.75, 1.1), 188, 202e6),
    "C": ((0.825, 0.54, 0.85), 184, 100e6),
    "D": ((0.68, 0.54, 0.695), 152, 52e6),
    "E": ((0.475, 0.51, 0.60), 106, 24e6),
}


@pytest.mark.parametrize("rules", ["tinynet", "efficientnet"])
def test_the_unscaled_b0_is_the_published_network(rules):
    s = summarize(Recipe(rules=rules))
    assert (s.r, s.w, s.d, s.rules, s.base_resolution, s.num_classes) == (1.0, 1.0, 1.0, rules, 224, 1000)
    assert (s.resolution, s.macs, s.params) == (224, B0_MACS, B0_PARAMS)
    assert (s.depths, s.widths, s.stem, s.head) == (B0_DEPTHS, B0_WIDTHS, 32, 1280)
    assert s.ratio == 1.0


@pytest.mark.parametrize("name", sorted(TINYNETS))
def test_tinynets_have_their_published_input_size_and_cost(name):
    (r, w, d), side, published_macs = TINYNETS[name]
    s = summarize(Recipe(r, w, d))
    assert s.resolution == side
    assert s.macs == pytest.approx(published_macs, rel=0.015)  # the README rounds, the paper counts slightly differently
    assert s.ratio == pytest.approx(s.macs / B0_MACS, rel=1e-12)
    assert s.stem == 32 and s.head == 1280  # TinyNet rules: fixed stem, head never below B0's


def test_tinynet_a_has_its_published_parameter_count_and_depths():
    s = summarize(Recipe(0.86, 1.0, 1.2))
    assert s.params == 6_187_972
    # round(n * 1.2), half to even: 1.2 -> 1, 2.4 -> 2, 3.6 -> 4, 4.8 -> 5.
    assert s.depths == [1, 2, 2, 4, 4, 5, 1] and s.widths == B0_WIDTHS


def test_a_tiny_efficientnet_rules_recipe_worked_by_hand():
    s = summarize(Recipe(0.5, 0.5, 0.5, rules="efficientnet", base_resolution=32, num_classes=10))
    assert s.resolution == 16  # int(32 * 0.5)
    assert s.depths == [1, 1, 1, 2, 2, 2, 1]  # ceil(n / 2)
    # Nearest multiple of 8 of half of each width (at least 8; 12 rounds up to 16, 20 to 24).
    assert s.widths == [8, 16, 24, 40, 56, 96, 160]
    assert (s.stem, s.head) == (16, 640)  # both scale with w under EfficientNet's rules
    # The ratio is to B0 in the same context (32 px, 10 classes), and well above the closed
    # form r² w² d = 1/32, which small networks' fixed costs and rounding defeat.
    b0_here = summarize(Recipe(rules="efficientnet", base_resolution=32, num_classes=10))
    assert s.ratio == pytest.approx(s.macs / b0_here.macs, rel=1e-12) and b0_here.macs < B0_MACS / 40
    assert s.ratio > 2 / 32


def test_the_classifier_is_all_that_the_number_of_classes_changes():
    many, few = summarize(Recipe()), summarize(Recipe(num_classes=10))
    # A 1280 -> K linear layer: 1280 K multiply-accumulates and 1280 K weights plus K biases.
    assert many.macs - few.macs == 1280 * 990
    assert many.params - few.params == 1281 * 990
    assert (few.depths, few.widths, few.stem, few.head) == (many.depths, many.widths, many.stem, many.head)
    assert few.ratio == 1.0  # the ratio is taken in the recipe's own context


def test_the_ratio_is_taken_at_the_recipes_own_base_resolution():
    # Resolution alone scales every layer's MACs with the pixel count except the pooled ones
    # (SE convs and the classifier): halving the side gives a bit more than a quarter.
    half = summarize(Recipe(r=0.5, base_resolution=64, num_classes=10))
    assert half.resolution == 32
    assert 0.25 < half.ratio < 0.27
    assert half.params == summarize(Recipe(base_resolution=64, num_classes=10)).params  # weights do not see pixels


def test_the_text_block_says_it_in_words():
    text = format_summary(summarize(Recipe()), extra={"note": "hello"})
    lines = text.splitlines()
    assert lines == [
        "recipe     r=1  w=1  d=1  (tinynet rules)",
        "input      224x224 px (base 224)",
        "MACs       385,814,752 (385.81M)",
        "ratio c    1.0000 of the unscaled B0",
        "params     5,288,548 (5.289M), 1000 classes",
        "depths     1 2 2 3 3 4 1  (16 blocks)",
        "widths     16 24 40 80 112 192 320",
        "stem/head  32 / 1280 channels",
        "note       hello",
    ]


def test_inspect_prints_the_summary(capsys):
    assert main(["inspect", "--r", "0.475", "--w", "0.51", "--d", "0.6", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["resolution"], out["depths"], out["stem"], out["head"]) == (106, [1, 1, 1, 2, 2, 2, 1], 32, 1280)
    assert out["macs"] == pytest.approx(24e6, rel=0.015) and out["rules"] == "tinynet"
    assert main(["inspect", "--r", "1", "--w", "1", "--d", "1"]) == 0
    assert "MACs       385,814,752 (385.81M)" in capsys.readouterr().out
