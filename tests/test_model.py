"""The torch builder: topology, documented (timm-style) state-dict keys, and basic behaviour."""

from __future__ import annotations

import pytest
import torch

from tinyscale.space.arch import build_architecture
from tinyscale.space.model import BN_EPS, BN_MOMENTUM, DropPath, build_model
from tinyscale.space.recipe import Recipe


def expected_keys(recipe: Recipe) -> set[str]:
    """The key layout documented in tinyscale/space/model.py, written out independently."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv_stem.weight", "conv_head.weight", "classifier.weight", "classifier.bias"}
    keys |= {f"bn1.{k}" for k in bn} | {f"bn2.{k}" for k in bn}
    se = ("se.conv_reduce.weight", "se.conv_reduce.bias", "se.conv_expand.weight", "se.conv_expand.bias")
    for stage, n in enumerate(build_architecture(recipe).depths):
        for i in range(n):
            p = f"blocks.{stage}.{i}."
            if stage == 0:
                convs, bns = ("conv_dw", "conv_pw"), ("bn1", "bn2")
            else:
                convs, bns = ("conv_pw", "conv_dw", "conv_pwl"), ("bn1", "bn2", "bn3")
            keys |= {p + f"{c}.weight" for c in convs} | {p + s for s in se}
            keys |= {p + f"{b}.{k}" for b in bns for k in bn}
    return keys


@pytest.mark.parametrize(
    "recipe",
    [Recipe(), Recipe(0.5, 0.5, 0.6, base_resolution=32, num_classes=10),
     Recipe(1.0, 1.2, 1.4, rules="efficientnet", base_resolution=32, num_classes=10)],
)
def test_state_dict_keys_follow_the_documented_layout(recipe):
    with torch.device("meta"):
        model = build_model(recipe)
    assert set(model.state_dict()) == expected_keys(recipe)


def test_pinned_b0_keys_and_shapes():
    with torch.device("meta"):
        sd = build_model(Recipe()).state_dict()
    pinned = {
        "conv_stem.weight": (32, 3, 3, 3),
        "bn1.running_var": (32,),
        "blocks.0.0.conv_dw.weight": (32, 1, 3, 3),
        "blocks.0.0.se.conv_reduce.weight": (8, 32, 1, 1),
        "blocks.0.0.conv_pw.weight": (16, 32, 1, 1),
        "blocks.1.0.conv_pw.weight": (96, 16, 1, 1),
        "blocks.1.0.se.conv_expand.bias": (96,),
        "blocks.1.1.conv_pwl.weight": (24, 144, 1, 1),
        "blocks.5.3.conv_dw.weight": (1152, 1, 5, 5),
        "blocks.6.0.bn3.running_mean": (320,),
        "conv_head.weight": (1280, 320, 1, 1),
        "bn2.weight": (1280,),
        "classifier.weight": (1000, 1280),
        "classifier.bias": (1000,),
    }
    assert {k: tuple(sd[k].shape) for k in pinned} == pinned
    assert len(sd) == len(expected_keys(Recipe()))


def test_forward_shape_train_and_eval():
    torch.manual_seed(0)
    rc = Recipe(0.5, 0.4, 0.5, base_resolution=32, num_classes=10)  # 16 px
    model = build_model(rc)
    x = torch.randn(4, 3, rc.resolution, rc.resolution)
    model.train()
    out = model(x)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    out.sum().backward()
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)  # no dropout / drop-path at eval


def test_batchnorm_settings_and_activation():
    model = build_model(Recipe(0.5, 0.3, 0.3, base_resolution=32, num_classes=10))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == BN_EPS == 1e-3 and m.momentum == BN_MOMENTUM == 0.01 for m in bns)
    assert any(isinstance(m, torch.nn.SiLU) for m in model.modules())
    assert model.dropout.p == 0.2


def test_drop_path_only_on_residual_blocks_and_grows_with_depth():
    model = build_model(Recipe(), drop_path_rate=0.2)
    rates = []
    for stage in model.blocks:
        for block in stage:
            if block.has_skip:
                assert isinstance(block.drop_path, DropPath)
                rates.append(block.drop_path.rate)
            else:
                assert isinstance(block.drop_path, torch.nn.Identity)
    assert rates == sorted(rates) and 0 < rates[0] and rates[-1] < 0.2


def test_drop_path_keeps_expectation():
    torch.manual_seed(0)
    dp = DropPath(0.5).train()
    x = torch.ones(20000, 1, 1, 1)
    y = dp(x)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert abs(y.mean().item() - 1.0) < 0.05


@pytest.mark.parametrize("kw", [{"dropout": 1.0}, {"dropout": -0.1}, {"drop_path_rate": 1.5}])
def test_invalid_regularisation(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        build_model(Recipe(0.5, 0.3, 0.3, base_resolution=32, num_classes=10), **kw)


def test_zero_init_residual_makes_every_skip_block_the_identity():
    from tinyscale.space.model import DepthwiseSeparable, InvertedResidual

    torch.manual_seed(0)
    model = build_model(Recipe(r=0.5, w=0.5, d=1.2, base_resolution=32, num_classes=10), dropout=0.0,
                        drop_path_rate=0.0).eval()
    blocks = [m for m in model.modules() if isinstance(m, (DepthwiseSeparable, InvertedResidual))]
    skips = [b for b in blocks if b.has_skip]
    assert skips and len(skips) < len(blocks)  # the test must see both kinds
    x = {id(b): torch.randn(2, b.conv_dw.in_channels if isinstance(b, DepthwiseSeparable) else b.conv_pw.in_channels,
                            4, 4) for b in blocks}
    with torch.no_grad():
        before = {id(b): b(x[id(b)]) for b in blocks}
        model.zero_init_residual_branches()
        after = {id(b): b(x[id(b)]) for b in blocks}
    for b in blocks:
        if b.has_skip:
            assert not torch.equal(before[id(b)], x[id(b)])
            assert torch.equal(after[id(b)], x[id(b)])
        else:  # blocks without a skip keep their output: zeroing them would cut the network
            assert torch.equal(after[id(b)], before[id(b)])
