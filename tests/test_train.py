"""The trainer: learns the generated data above chance, deterministic per seed, NaN ends a run
as failed, batches are the images (normalised, channels-last), the schedule is warm-up + cosine."""

from __future__ import annotations

import math

import pytest
import torch

from tinyscale.data.datasets import generate_data
from tinyscale.space.recipe import Recipe
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import BatchMaker, data_order, lr_at, train_recipe


@pytest.fixture(scope="module")
def data():
    return generate_data(num_classes=4, train_size=384, val_size=192, size=16, seed=0)


def _recipe(**kw) -> Recipe:
    return Recipe(**{"r": 1.0, "w": 0.5, "d": 0.5, "base_resolution": 16, "num_classes": 4, **kw})


FAST = TrainConfig(steps=50, batch_size=32, threads=1, bn_calibration_images=256)


def test_learns_generated_data_above_chance_and_reports_timings(data):
    res = train_recipe(_recipe(), data, FAST, seed=0)
    assert res.failed is None
    assert res.accuracy > 0.6  # chance is 0.25
    assert res.steps == 50 and res.images_seen == 50 * 32
    assert res.train_seconds > 0 and res.eval_seconds > 0
    assert res.images_per_second == pytest.approx(res.images_seen / res.train_seconds)
    assert math.isfinite(res.loss) and res.loss < math.log(4)


def test_deterministic_for_a_seed(data):
    cfg = FAST.with_(steps=8, translate=2, flip=True)
    a = train_recipe(_recipe(r=0.5), data, cfg, seed=3)
    b = train_recipe(_recipe(r=0.5), data, cfg, seed=3)
    c = train_recipe(_recipe(r=0.5), data, cfg, seed=4)
    assert (a.accuracy, a.loss, a.train_loss) == (b.accuracy, b.loss, b.train_loss)
    assert (a.loss, a.train_loss) != (c.loss, c.train_loss)


def test_diverging_run_fails_with_reason(data):
    res = train_recipe(_recipe(r=0.5), data, FAST.with_(lr=1e30, warmup=0), seed=0)
    assert res.accuracy is None
    assert res.failed is not None and ("nan" in res.failed or "inf" in res.failed)
    assert "at step" in res.failed and res.steps < 50


def test_class_count_mismatch_is_an_error(data):
    with pytest.raises(ValueError, match="classes"):
        train_recipe(_recipe(num_classes=10), data, FAST, seed=0)


def test_batches_are_normalised_images_in_channels_last(data):
    images = data.at(16)[0]
    mean, std = data.mean_std()
    maker = BatchMaker(images, mean, std)
    idx = torch.tensor([5, 0, 9])
    x = maker(idx, augment=False)
    ref = (images[idx].float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(x, ref, atol=1e-5)
    assert x.is_contiguous(memory_format=torch.channels_last)


def test_augmentation_translates_and_flips_each_image(data):
    images = data.at(16)[0]
    maker = BatchMaker(images, (0.0,) * 3, (1 / 255,) * 3, translate=2, flip=True,
                       generator=torch.Generator().manual_seed(0))
    idx = torch.arange(64)
    x = maker(idx, augment=True)  # values are raw 0..255 with this mean/std
    src = images[idx].float()
    # Every augmented image equals its source shifted by (dy, dx) in [-2, 2]^2 (zero border),
    # possibly mirrored: check by trying all 50 candidates.
    padded = torch.nn.functional.pad(src, (2, 2, 2, 2))
    matched = 0
    for i in range(64):
        found = False
        for flip in (False, True):
            for dy in range(5):
                for dx in range(5):
                    cand = padded[i, :, dy:dy + 16, dx:dx + 16]
                    cand = cand.flip(-1) if flip else cand
                    found |= torch.equal(cand, x[i])
        matched += found
    assert matched == 64
    assert not torch.equal(x, src)  # something moved


def test_data_order_covers_each_epoch_once():
    order = data_order(10, steps=7, batch_size=3, generator=torch.Generator().manual_seed(0))
    flat = order.flatten().tolist()
    assert order.shape == (7, 3)
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))


def test_lr_schedule_warmup_then_cosine_to_zero():
    cfg = TrainConfig(steps=100, lr=0.2)
    assert cfg.warmup_steps == 10
    assert lr_at(0, cfg) == pytest.approx(0.02) and lr_at(9, cfg) == pytest.approx(0.2)
    assert lr_at(10, cfg) == pytest.approx(0.2)
    assert lr_at(55, cfg) == pytest.approx(0.1)
    assert lr_at(99, cfg) < 0.001


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", -1.0), ("optimizer", "adam"), ("threads", 0), ("average_tail", 1.5),
                                         ("label_smoothing", 1.0)])
def test_bad_train_config_is_a_clear_error(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_bn_calibration_sees_the_whole_training_set_not_its_first_classes():
    # Folder datasets come class-sorted (train/<class>/...): the calibration images must be
    # spread over the split, or BN statistics describe the first class(es) only.
    from tinyscale.train.trainer import calibrate_batchnorm

    images = torch.cat([torch.zeros(64, 3, 2, 2, dtype=torch.uint8), torch.full((64, 3, 2, 2), 255, dtype=torch.uint8)])
    batches = BatchMaker(images, (0.5,) * 3, (0.5,) * 3)  # 0 -> -1, 255 -> +1: whole-set mean 0, var 1
    bn = torch.nn.BatchNorm2d(3)
    calibrate_batchnorm(torch.nn.Sequential(bn), batches, 64, batch_size=16)
    assert bn.running_mean.abs().max() < 0.2
    assert (bn.running_var - 1).abs().max() < 0.2


def test_zero_init_residual_starts_training_from_identity_blocks(data):
    from tinyscale.space.model import InvertedResidual

    seen = {}

    def keep(model):
        seen["gammas"] = [float(b.bn3.weight.detach().abs().max()) for b in model.modules()
                          if isinstance(b, InvertedResidual) and b.has_skip]

    cfg = FAST.with_(steps=1, lr=1e-9, warmup=0, zero_init_residual=True)
    train_recipe(_recipe(d=1.0), data, cfg, seed=0, on_trained=keep)
    assert seen["gammas"] and max(seen["gammas"]) < 1e-6  # one near-zero step leaves them ~0
    train_recipe(_recipe(d=1.0), data, cfg.with_(zero_init_residual=False), seed=0, on_trained=keep)
    assert min(seen["gammas"]) > 0.5


def _tf_rmsprop_reference(w0, grads_of, lrs, alpha=0.9, eps=1e-3, momentum=0.9, weight_decay=0.0):
    """TensorFlow 1's RMSPropOptimizer (non-centred), written out per weight in float64:
    ms starts at 1, eps inside the square root, lr inside the momentum buffer."""
    w = w0.clone()
    ms = torch.ones_like(w)
    mom = torch.zeros_like(w)
    for step, lr in enumerate(lrs):
        g = grads_of(w, step) + weight_decay * w
        ms = alpha * ms + (1 - alpha) * g * g
        mom = momentum * mom + lr * g / torch.sqrt(ms + eps)
        w = w - mom
    return w


def test_tf_rmsprop_follows_tensorflows_update_rule_with_a_changing_lr():
    from tinyscale.train.trainer import TFRMSprop

    gen = torch.Generator().manual_seed(0)
    w0 = torch.randn(5, 3, dtype=torch.float64, generator=gen)
    b0 = torch.randn(3, dtype=torch.float64, generator=gen)
    targets = torch.randn(6, 5, 3, dtype=torch.float64, generator=gen)
    scale = torch.logspace(-4, 1, 15, dtype=torch.float64).view(5, 3)  # tiny to large gradients

    def grad_w(w, step):
        return scale * (w - targets[step])

    def grad_b(b, step):
        return b - targets[step, 0]

    lrs = [0.01, 0.03, 0.05, 0.04, 0.02, 0.005]
    w = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(b0.clone())
    opt = TFRMSprop([{"params": [w], "weight_decay": 0.01}, {"params": [b], "weight_decay": 0.0}], lr=lrs[0])
    for step, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        w.grad = grad_w(w.detach(), step)
        b.grad = grad_b(b.detach(), step)
        opt.step()
    assert torch.allclose(w.detach(), _tf_rmsprop_reference(w0, grad_w, lrs, weight_decay=0.01), rtol=1e-12, atol=1e-14)
    assert torch.allclose(b.detach(), _tf_rmsprop_reference(b0, grad_b, lrs), rtol=1e-12, atol=1e-14)


def test_tf_rmsprop_first_step_scales_with_the_gradient_unlike_pytorchs():
    # The reason it exists: PyTorch's RMSprop starts its mean square at 0, so its first update is
    # up to lr / sqrt(1 - alpha) = 3.2 lr, near-full size even for a gradient of 1e-3 (eps 1e-3
    # outside the root barely damps it); TF's starts at 1 and moves such a weight by ~lr * g.
    from tinyscale.train.trainer import TFRMSprop

    g = torch.tensor([1e-3, 1.0, 100.0], dtype=torch.float64)
    moves = {}
    for name, make in (("tf", lambda p: TFRMSprop([p], lr=0.1)),
                       ("torch", lambda p: torch.optim.RMSprop([p], lr=0.1, alpha=0.9, eps=1e-3, momentum=0.9))):
        p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = make(p)
        p.grad = g.clone()
        opt.step()
        moves[name] = -p.detach()
    expected = 0.1 * g / torch.sqrt(0.9 + 0.1 * g * g + 1e-3)
    assert torch.allclose(moves["tf"], expected, rtol=1e-12)
    assert float(moves["tf"][0]) < 0.01 * float(moves["torch"][0])  # a tiny gradient barely moves it
    assert float(moves["torch"][0]) > 0.5 * 0.1  # PyTorch's: over half of lr for a gradient of 1e-3
    assert float(moves["torch"][2]) == pytest.approx(0.1 / math.sqrt(0.1), rel=1e-3)  # 3.2 lr


def test_training_with_tf_rmsprop_learns_and_keeps_state_per_parameter(data):
    res = train_recipe(_recipe(), data, FAST.with_(optimizer="rmsprop-tf", lr=0.004), seed=0)
    assert res.failed is None and res.accuracy > 0.6  # chance is 0.25


def test_tail_averaging_evaluates_the_mean_of_the_last_iterates(data, monkeypatch):
    # The weights after each of the last 3 of 8 steps are recorded from the optimizer; the network
    # that is evaluated (and handed to on_trained) must hold their mean, parameter by parameter.
    import tinyscale.train.trainer as train_module

    snapshots = []
    real = train_module._optimizer

    def recording(model, config):
        opt = real(model, config)
        step = opt.step

        def step_and_record(*args, **kwargs):
            out = step(*args, **kwargs)
            snapshots.append([p.detach().clone() for p in model.parameters()])
            return out

        opt.step = step_and_record
        return opt

    monkeypatch.setattr(train_module, "_optimizer", recording)
    kept = {}
    cfg = FAST.with_(steps=8, average_tail=3 / 8)
    res = train_recipe(_recipe(r=0.5), data, cfg, seed=5, on_trained=lambda m: kept.update(params=list(m.parameters())))
    assert res.failed is None and len(snapshots) == 8
    for i, p in enumerate(kept["params"]):
        expected = torch.stack([s[i] for s in snapshots[-3:]]).mean(0)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(kept["params"][0], snapshots[-1][0])  # not the final weights
    # A one-step tail is the final weights: the same run as without averaging.
    plain = train_recipe(_recipe(r=0.5), data, FAST.with_(steps=8), seed=5)
    one = train_recipe(_recipe(r=0.5), data, FAST.with_(steps=8, average_tail=1 / 8), seed=5)
    assert (one.accuracy, one.loss) == (plain.accuracy, plain.loss)


def test_stores_written_before_tail_averaging_still_resume():
    from tinyscale.train.config import comparable_settings, setting_changes

    stored = comparable_settings(FAST)
    del stored["average_tail"]
    assert setting_changes(stored, FAST) == []
    assert setting_changes(stored, FAST.with_(average_tail=0.25)) == ["average_tail: 0.0 then, 0.25 now"]


# --------------------------------------------------------------------------- device and precision


def test_device_names_resolve_against_what_torch_sees():
    from tinyscale.train.device import resolve_device

    assert resolve_device("auto", device_count=0) == "cpu"
    assert resolve_device("auto", device_count=2) == "cuda"
    assert resolve_device("cuda:1", device_count=2) == "cuda:1"
    assert resolve_device("cpu", device_count=2) == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda", device_count=0)
    with pytest.raises(ValueError, match=r"no GPU 2; torch sees 2 \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2", device_count=2)
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", ""):
        with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
            resolve_device(bad, device_count=1)
    # This machine's own count: without a GPU, auto is the CPU and cuda is a one-line error.
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize("field, value", [("device", "gpu"), ("device", "auto"), ("precision", "fp8"),
                                          ("precision", None)])
def test_device_and_precision_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_bf16_autocast_trains_in_bf16_and_still_learns(data):
    fp32 = train_recipe(_recipe(), data, FAST, seed=0)
    bf16 = train_recipe(_recipe(), data, FAST.with_(precision="bf16"), seed=0)
    assert bf16.failed is None and bf16.accuracy > 0.6  # chance is 0.25
    # The same seed and data in another precision: the runs part (bf16 rounds activations).
    assert (bf16.loss, bf16.train_loss) != (fp32.loss, fp32.train_loss)
    again = train_recipe(_recipe(), data, FAST.with_(precision="bf16"), seed=0)
    assert (again.accuracy, again.loss) == (bf16.accuracy, bf16.loss)


def test_precision_is_compared_on_resume_and_the_device_is_not():
    from tinyscale.train.config import comparable_settings, setting_changes

    stored = comparable_settings(FAST)
    assert "device" not in stored and stored["precision"] == "fp32"
    assert setting_changes(stored, FAST.with_(device="cuda:1")) == []
    assert setting_changes(stored, FAST.with_(precision="bf16")) == ["precision: 'fp32' then, 'bf16' now"]
    del stored["precision"]  # a store written before precisions existed trained in fp32
    assert setting_changes(stored, FAST) == []


def test_resizing_each_batch_trains_exactly_as_the_resized_copy(data, monkeypatch):
    # A dataset too large for a resized copy per worker is resized batch by batch; the images,
    # and so the run, must be the same bit for bit (here at 12 px from the 16-px data).
    import tinyscale.data.datasets as datasets

    cfg = FAST.with_(steps=12, translate=1, flip=True)
    copied = train_recipe(_recipe(r=0.75), data, cfg, seed=5)
    assert data.for_training(12)[2] is None
    monkeypatch.setattr(datasets, "RESIZED_COPY_LIMIT", 0)
    train, val, resize_to = data.for_training(12)
    assert resize_to == 12 and train.shape[-1] == 16  # the decoded images, resized per batch
    per_batch = train_recipe(_recipe(r=0.75), data, cfg, seed=5)
    assert (per_batch.accuracy, per_batch.loss, per_batch.train_loss) == (copied.accuracy, copied.loss,
                                                                          copied.train_loss)


def test_a_worker_keeps_one_resized_copy_at_a_time(data):
    first = data.at(12)[0]
    assert data.at(12)[0].data_ptr() == first.data_ptr()  # kept while the resolution is the same
    data.at(8)
    assert 12 not in data._by_resolution and 8 in data._by_resolution
