"""The B0 table and both scaling rule sets, pinned to the reference (shared/reference/scaling.md)."""

from __future__ import annotations

import pytest

from baselines.efficientnet import efficientnet_b
from baselines.tinynet import tinynet_recipe
from tinyscale.space.arch import B0_STAGES, build_architecture, make_divisible, scale_repeats
from tinyscale.space.recipe import Recipe


def test_b0_table_matches_tf_blocks_args():
    rows = [(s.kind, s.kernel, s.stride, s.expand, s.channels, s.repeats) for s in B0_STAGES]
    assert rows == [
        ("ds", 3, 1, 1, 16, 1),
        ("ir", 3, 2, 6, 24, 2),
        ("ir", 5, 2, 6, 40, 2),
        ("ir", 3, 2, 6, 80, 3),
        ("ir", 5, 1, 6, 112, 3),
        ("ir", 5, 2, 6, 192, 4),
        ("ir", 3, 1, 6, 320, 1),
    ]


def test_b0_architecture():
    for rules in ("tinynet", "efficientnet"):  # identical at r = w = d = 1
        a = build_architecture(Recipe(rules=rules))
        assert a.depths == (1, 2, 2, 3, 3, 4, 1)
        assert a.widths == (16, 24, 40, 80, 112, 192, 320)
        assert (a.stem_channels, a.head_channels, a.stem_size, a.final_size) == (32, 1280, 112, 7)
        assert [b.out_size for b in a.blocks if b.index == 0] == [112, 56, 28, 14, 14, 7, 7]
        # SE reduces to a quarter of the block *input* channels; stage 1's input is the stem.
        assert [b.se_channels for b in a.blocks[:3]] == [8, 4, 6]
        assert [b.mid_channels for b in a.blocks[:3]] == [32, 96, 144]


# --- channel rounding: nearest multiple of 8, at least 8, +8 if it lost more than 10 % -------------

@pytest.mark.parametrize(
    "value, expected",
    [
        (16, 16), (24, 24), (20, 24),  # exact multiples stay; 20 rounds half up (int(v + 4))
        (19.9, 24),  # nearest is 16, but 16 < 0.9·19.9 = 17.91: bumped
        (17.7, 16),  # nearest 16 >= 0.9·17.7 = 15.93: kept
        (11.9, 16),  # nearest 8 < 10.71: bumped
        (8.8, 8),  # 8 >= 7.92: kept
        (35.9, 40),  # nearest 32 < 32.31: bumped
        (35.5, 32),  # 32 >= 31.95: kept
        (1.0, 8), (0.01, 8),  # never below one divisor
        (1280 * 0.51, 656),  # TinyNet-E's head before the max(1280, .) rule
    ],
)
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


def test_make_divisible_is_monotone():
    values = [i / 64 for i in range(1, 64 * 200)]
    out = [make_divisible(v) for v in values]
    assert all(a <= b for a, b in zip(out, out[1:]))


# --- depth rounding ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "n, d, expected",
    [
        (1, 2.5, 2),  # n·d = 2.5 -> 2 (half to even)
        (1, 3.5, 4),  # n·d = 3.5 -> 4
        (2, 1.25, 2),  # 2.5 -> 2
        (4, 0.625, 2),  # 2.5 -> 2
        (2, 0.25, 1),  # 0.5 -> 0 -> at least one block
        (4, 0.375, 2),  # 1.5 -> 2
        (3, 0.01, 1),
        (3, 1.1, 3),  # 3.3 -> 3
    ],
)
def test_tinynet_repeats_round_half_to_even_at_least_one(n, d, expected):
    assert scale_repeats(n, d, "tinynet") == expected


@pytest.mark.parametrize(
    "n, d, expected",
    [(1, 1.1, 2), (2, 1.1, 3), (3, 1.1, 4), (4, 1.1, 5), (4, 0.625, 3), (3, 0.34, 2), (3, 0.01, 1), (2, 1.0, 2)],
)
def test_efficientnet_repeats_ceil(n, d, expected):
    assert scale_repeats(n, d, "efficientnet") == expected


def test_half_even_depth_in_a_built_network():
    # d = 0.625: stage 6 has 4·0.625 = 2.5 blocks (-> 2 under TinyNet rules, 3 under ceil).
    assert build_architecture(Recipe(d=0.625)).depths == (1, 1, 1, 2, 2, 2, 1)
    assert build_architecture(Recipe(d=0.625, rules="efficientnet")).depths == (1, 2, 2, 2, 2, 3, 1)
    # d = 1.75: stage 2 has 3.5 blocks -> 4; stage 1 has 1.75 -> 2.
    assert build_architecture(Recipe(d=1.75)).depths == (2, 4, 4, 5, 5, 7, 2)


# --- rule sets: stem and head --------------------------------------------------------------------

def test_stem_and_head_rules():
    tn = build_architecture(Recipe(w=0.5))
    ef = build_architecture(Recipe(w=0.5, rules="efficientnet"))
    assert (tn.stem_channels, tn.head_channels) == (32, 1280)  # fixed stem, head >= 1280
    assert (ef.stem_channels, ef.head_channels) == (16, 640)  # both scale with w
    assert tn.widths == ef.widths == (8, 16, 24, 40, 56, 96, 160)
    big = build_architecture(Recipe(w=2.0))
    assert (big.stem_channels, big.head_channels) == (32, 2560)


# --- published models ----------------------------------------------------------------------------

# Total MBConv blocks of EfficientNet-B0..B7 (ceil(n·d) per stage).
B_BLOCKS = {"b0": 16, "b1": 23, "b2": 23, "b3": 26, "b4": 32, "b5": 39, "b6": 45, "b7": 55}


@pytest.mark.parametrize("name", sorted(B_BLOCKS))
def test_efficientnet_b_depths(name):
    assert sum(build_architecture(efficientnet_b(name)).depths) == B_BLOCKS[name]


def test_efficientnet_b7_channels():
    a = build_architecture(efficientnet_b("b7"))
    assert a.widths == (32, 48, 80, 160, 224, 384, 640)
    assert (a.stem_channels, a.head_channels) == (64, 2560)
    assert a.depths == (4, 7, 7, 10, 10, 13, 4)


@pytest.mark.parametrize(
    "name, depths",
    [
        ("tinynet-a", (1, 2, 2, 4, 4, 5, 1)),  # 1.2, 2.4, 3.6, 4.8
        ("tinynet-b", (1, 2, 2, 3, 3, 4, 1)),  # 1.1, 2.2, 3.3, 4.4
        ("tinynet-c", (1, 2, 2, 3, 3, 3, 1)),  # 0.85, 1.7, 2.55, 3.4
        ("tinynet-d", (1, 1, 1, 2, 2, 3, 1)),  # 0.695, 1.39, 2.085, 2.78
        ("tinynet-e", (1, 1, 1, 2, 2, 2, 1)),  # 0.6, 1.2, 1.8, 2.4
    ],
)
def test_tinynet_depths(name, depths):
    assert build_architecture(tinynet_recipe(name)).depths == depths


def test_spatial_sizes_follow_ceil_division():
    a = build_architecture(Recipe(r=0.475))  # 106 px
    assert a.stem_size == 53
    assert [b.out_size for b in a.blocks if b.index == 0] == [53, 27, 14, 7, 7, 4, 4]
