"""Data loaders: class folders (with and without val/), corrupt files, empty/missing datasets,
IDX parsing, checksum verification (local files only), resizing and subsets."""

from __future__ import annotations

import gzip
import hashlib
import struct

import pytest
import torch
from PIL import Image

from tinyscale.data.datasets import generate_data, load_data, resize_images, split_validation
from tinyscale.data.published import download_verified, read_idx, verify_files


def _write_image(path, color, size=(20, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)


def _folder_dataset(root, with_val: bool):
    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for cls, color in colors.items():
        for i in range(6):
            _write_image(root / "train" / cls / f"{i}.png", color)
        if with_val:
            _write_image(root / "val" / cls / "v.jpg", color)
    return colors


def test_folder_with_val_split(tmp_path):
    _folder_dataset(tmp_path, with_val=True)
    data = load_data(str(tmp_path), decode_size=8)
    assert data.class_names == ("cat", "dog")
    assert data.train_images.shape == (12, 3, 8, 8) and data.val_images.shape == (2, 3, 8, 8)
    assert data.train_labels.tolist() == [0] * 6 + [1] * 6
    # Decoded pixels are the drawn colours (red cats, blue dogs; JPEG within a few levels).
    assert data.train_images[0, :, 4, 4].tolist() == [255, 0, 0]
    assert (data.val_images[1, :, 4, 4].int() - torch.tensor([0, 0, 255])).abs().max() <= 3
    assert data.skipped == ()


def test_folder_without_val_holds_out_seeded_split(tmp_path):
    _folder_dataset(tmp_path, with_val=False)
    a = load_data(str(tmp_path), seed=1, val_fraction=0.25, decode_size=8)
    b = load_data(str(tmp_path), seed=1, val_fraction=0.25, decode_size=8)
    assert len(a.val_images) == 3 and len(a.train_images) == 9
    assert torch.equal(a.val_labels, b.val_labels) and torch.equal(a.val_images, b.val_images)


def test_corrupt_and_grayscale_images_counted_and_skipped(tmp_path):
    _folder_dataset(tmp_path, with_val=False)
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "train" / "dog" / "empty.png").write_bytes(b"")
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored: not an image suffix")
    _write_image(tmp_path / "train" / "dog" / "gray.png", 128, mode="L")
    with pytest.warns(UserWarning, match="2 unreadable image"):
        data = load_data(str(tmp_path), decode_size=8)
    assert len(data.skipped) == 2
    assert any("broken.jpg" in s for s in data.skipped) and any("empty.png" in s for s in data.skipped)
    assert len(data.train_images) + len(data.val_images) == 13  # 12 colour + 1 grayscale


@pytest.mark.parametrize("layout,msg", [
    ("missing", "does not exist"),
    ("empty", "0 class folder"),
    ("one_class", "1 class folder"),
    ("no_images", "no readable images"),
    ("val_extra", "classes that train/ lacks"),
])
def test_bad_datasets_are_clear_errors(tmp_path, layout, msg):
    root = tmp_path / "ds"
    if layout != "missing":
        root.mkdir()
    if layout == "one_class":
        _write_image(root / "train" / "cat" / "0.png", (1, 2, 3))
    if layout == "no_images":
        (root / "train" / "cat").mkdir(parents=True)
        (root / "train" / "dog").mkdir(parents=True)
        (root / "train" / "dog" / "x.png").write_bytes(b"garbage")
    if layout == "val_extra":
        _folder_dataset(root, with_val=True)
        _write_image(root / "val" / "bird" / "0.png", (0, 255, 0))
    with pytest.raises(ValueError, match=msg):
        load_data(str(root), decode_size=8)


def _idx_gz(path, array: torch.Tensor, magic: int):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.numpy().tobytes())


def test_read_idx_round_trip_and_damage(tmp_path):
    images = torch.randint(0, 256, (5, 4, 3), dtype=torch.uint8)
    _idx_gz(tmp_path / "img.gz", images, 0x803)
    assert torch.equal(read_idx(tmp_path / "img.gz", 0x803), images)
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "img.gz", 0x801)
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(struct.pack(">IIII", 0x803, 5, 4, 3) + b"\x00" * 10)
    with pytest.raises(ValueError, match="declares 60"):
        read_idx(tmp_path / "short.gz", 0x803)


def test_checksum_verification_on_local_files(tmp_path):
    good, bad = b"fashion", b"tampered"
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.gz").write_bytes(good)
    (src / "b.gz").write_bytes(bad)
    sums = {"a.gz": hashlib.md5(good).hexdigest(), "b.gz": hashlib.md5(good).hexdigest()}
    problems = verify_files(src, sums)
    assert len(problems) == 1 and problems[0].startswith("b.gz: MD5")
    assert verify_files(src, {"c.gz": "0" * 32}) == ["c.gz: missing"]
    # The download path, fed from a local file:// URL: good files are kept, a checksum
    # mismatch is an error and leaves nothing behind.
    dest = tmp_path / "cache"
    download_verified(src.as_uri() + "/", {"a.gz": sums["a.gz"]}, dest)
    assert (dest / "a.gz").read_bytes() == good
    with pytest.raises(ValueError, match="MD5"):
        download_verified(src.as_uri() + "/", {"b.gz": sums["b.gz"]}, dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.gz"]
    with pytest.raises(ValueError, match="could not download"):
        download_verified(src.as_uri() + "/", {"missing.gz": "0" * 32}, dest)


def test_resize_at_resolution_cached_three_channel_views():
    data = generate_data(num_classes=3, train_size=30, val_size=9, size=16, seed=0)
    train, val = data.at(8)
    assert train.shape == (30, 3, 8, 8) and val.shape == (9, 3, 8, 8) and train.dtype == torch.uint8
    assert data.at(8)[0].data_ptr() == train.data_ptr()  # resized once
    # A flat image stays flat; downsampling averages (antialiased).
    flat = torch.full((1, 1, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(resize_images(flat, 5), torch.full((1, 1, 5, 5), 77, dtype=torch.uint8))
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 200
    small = resize_images(checker.to(torch.uint8).view(1, 1, 16, 16), 4)
    assert ((small.int() - 100).abs() <= 2).all()


def test_grayscale_is_replicated_as_a_view():
    from tinyscale.data.datasets import ImageData

    gray = torch.randint(0, 256, (4, 1, 10, 10), dtype=torch.uint8)
    data = ImageData(gray, torch.zeros(4, dtype=torch.long), gray[:2], torch.zeros(2, dtype=torch.long),
                     ("a", "b"), source="test")
    train, _ = data.at(10)
    assert train.shape == (4, 3, 10, 10) and train.stride(1) == 0
    assert torch.equal(train[:, 2], gray[:, 0])
    assert len(data.mean_std()[0]) == 3


def test_subsets_and_splits_are_seeded():
    data = generate_data(seed=0)
    a, b = data.subset(100, 50, seed=2), data.subset(100, 50, seed=2)
    assert len(a.train_images) == 100 and len(a.val_images) == 50
    assert torch.equal(a.train_labels, b.train_labels)
    (ti, _), (vi, _) = split_validation(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10), 0.3, 0)
    assert len(ti) == 7 and len(vi) == 3
    with pytest.raises(ValueError, match="too few"):
        split_validation(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), torch.arange(1), 0.5, 0)
    with pytest.raises(ValueError, match="data must be"):
        load_data("")


def test_normalisation_statistics_cover_all_training_classes():
    # Class-sorted training images (as folder datasets are) beyond the statistics' sample size:
    # the mean must describe the whole training split, not its first class.
    from tinyscale.data.datasets import ImageData

    n = 12000
    train = torch.cat([torch.zeros(n // 2, 1, 2, 2, dtype=torch.uint8),
                       torch.full((n // 2, 1, 2, 2), 255, dtype=torch.uint8)])
    labels = torch.cat([torch.zeros(n // 2, dtype=torch.long), torch.ones(n // 2, dtype=torch.long)])
    val = torch.full((4, 1, 2, 2), 255, dtype=torch.uint8)  # must not enter the statistics
    data = ImageData(train, labels, val, torch.ones(4, dtype=torch.long), ("a", "b"), source="test")
    mean, std = data.mean_std()
    assert mean == pytest.approx((0.5,) * 3, abs=0.02)
    assert std == pytest.approx((0.5,) * 3, abs=0.02)


def test_the_normalisation_of_a_large_dataset_is_computed_without_a_float_copy(monkeypatch):
    # Past the copy limit mean and std are accumulated by chunks in float64: the same numbers
    # up to float summation order as the one-pass float32 result small datasets keep.
    import tinyscale.data.datasets as datasets

    small = generate_data(num_classes=3, train_size=300, val_size=30, size=12, seed=1)
    one_pass = small.mean_std()
    large = generate_data(num_classes=3, train_size=300, val_size=30, size=12, seed=1)
    monkeypatch.setattr(datasets, "RESIZED_COPY_LIMIT", 0)
    chunked = large.mean_std()
    for a, b in zip(one_pass, chunked):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-7)
