"""Integration: the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by setup.sh)."""

from __future__ import annotations

import pytest

from tinyscale.data.datasets import load_data
from tinyscale.data.published import DEBIAN_FASHION_MNIST, FASHION_MNIST_CLASSES, FASHION_MNIST_FILES, fashion_mnist_dir
from tinyscale.space.recipe import Recipe
from tinyscale.train.config import TrainConfig
from tinyscale.train.trainer import train_recipe

from _ci import skip_unless_ci  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    try:
        fashion_mnist_dir(download=False)
    except ValueError:
        skip_unless_ci("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    return load_data("fashion-mnist", download=False)


def test_published_sizes_and_balanced_classes(data):
    assert data.train_images.shape == (60000, 1, 28, 28) and data.val_images.shape == (10000, 1, 28, 28)
    assert data.class_names == FASHION_MNIST_CLASSES
    assert data.train_labels.bincount().tolist() == [6000] * 10
    assert data.val_labels.bincount().tolist() == [1000] * 10
    # Published statistics of the training images: mean 0.2860, std 0.3530 (in 0..1).
    mean, std = data.mean_std()
    assert mean[0] == pytest.approx(0.2860, abs=0.003) and std[0] == pytest.approx(0.3530, abs=0.003)


def test_brief_training_learns_fashion_mnist(data):
    small = data.subset(6400, 1000, seed=0)
    recipe = Recipe(r=1.0, w=0.5, d=0.5, base_resolution=32, num_classes=10)
    res = train_recipe(recipe, small, TrainConfig(steps=150, batch_size=64, threads=1), seed=0)
    assert res.failed is None
    assert res.accuracy > 0.6, res  # chance is 0.1
    assert small.at(32)[0].shape == (6400, 3, 32, 32)


def test_debian_files_are_used_when_present(monkeypatch):
    if not DEBIAN_FASHION_MNIST.is_dir():
        skip_unless_ci("Debian's dataset-fashion-mnist is not installed")
    monkeypatch.delenv("TINYSCALE_FASHION_MNIST", raising=False)
    assert fashion_mnist_dir(download=False) == DEBIAN_FASHION_MNIST


def test_an_override_folder_with_all_four_files_comes_first(monkeypatch, tmp_path):
    # The files only need to be there to be chosen (reading them is load_data's business).
    monkeypatch.setenv("TINYSCALE_CACHE", str(tmp_path / "cache"))  # no cached copy to fall back on
    override = tmp_path / "fashion"
    override.mkdir()
    for name in FASHION_MNIST_FILES:
        (override / name).write_bytes(b"")
    monkeypatch.setenv("TINYSCALE_FASHION_MNIST", str(override))
    assert fashion_mnist_dir(download=False) == override
    # With one file missing the override is passed over: Debian's copy, or nothing (downloads off).
    (override / "t10k-labels-idx1-ubyte.gz").unlink()
    if DEBIAN_FASHION_MNIST.is_dir():
        assert fashion_mnist_dir(download=False) == DEBIAN_FASHION_MNIST
    else:
        with pytest.raises(ValueError, match="not installed"):
            fashion_mnist_dir(download=False)
