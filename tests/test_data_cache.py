"""The decoded-dataset cache (tinyscale/data/cache.py): the same images as the in-RAM loader,
rebuilt when the folder changes or the cache is damaged, never half-written, safe to build
from two processes at once; and `tinyscale data`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tinyscale.data.cache as cache
import tinyscale.data.decode_pool as decode_pool
from tinyscale.data.datasets import load_folder
from tinyscale.study.executors import DataSpec, worker_data

REPO = Path(__file__).resolve().parents[1]
SIZE = 16


def _jpeg_folder(root: Path, *, classes: int = 3, per_class: int = 10, val: bool = False, seed: int = 0) -> Path:
    """Noisy JPEGs of mixed sizes (so the crop and resize matter), one colour cast per class."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        for i in range(per_class):
            pixels = rng.integers(0, 256, (18 + i % 5, 22 + i % 3, 3), dtype=np.uint8)
            pixels[..., c % 3] //= 3
            split = "val" if val and i % 4 == 0 else "train"
            path = root / split / f"class{c}" / f"{i:03d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path, quality=90)
    return root


@pytest.fixture
def cached(monkeypatch, tmp_path):
    """Every set counts as large enough to cache; the cache lives in tmp_path/cache."""
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    return tmp_path / "cache"


def _same_data(a, b) -> None:
    for name in ("train_images", "train_labels", "val_images", "val_labels"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
    assert a.class_names == b.class_names and a.skipped == b.skipped


def _entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.mark.parametrize("val", [False, True])
def test_cached_load_gives_the_in_ram_loaders_images_and_a_hit_decodes_nothing(tmp_path, cached, capsys, val):
    root = _jpeg_folder(tmp_path / "ds", val=val)
    (root / "train" / "class1" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.warns(UserWarning, match="1 unreadable"):
        in_ram = load_folder(root, seed=3, val_fraction=0.25, decode_size=SIZE)
    with pytest.warns(UserWarning, match="1 unreadable"):
        first = load_folder(root, seed=3, val_fraction=0.25, decode_size=SIZE, decoded_cache=cached)
    assert "decoding" in capsys.readouterr().err
    _same_data(in_ram, first)
    assert len(_entries(cached)) == (2 if val else 1)  # one entry per split folder
    with pytest.warns(UserWarning, match="1 unreadable"):
        again = load_folder(root, seed=3, val_fraction=0.25, decode_size=SIZE, decoded_cache=cached)
    assert capsys.readouterr().err == ""  # a hit: nothing decoded, nothing said
    _same_data(in_ram, again)
    # One entry in file order serves every split seed.
    with pytest.warns(UserWarning):
        other_seed = load_folder(root, seed=4, val_fraction=0.25, decode_size=SIZE, decoded_cache=cached)
    assert capsys.readouterr().err == ""
    with pytest.warns(UserWarning):
        _same_data(load_folder(root, seed=4, val_fraction=0.25, decode_size=SIZE), other_seed)


def test_the_cached_images_are_a_shared_map_not_a_copy(tmp_path, cached):
    root = _jpeg_folder(tmp_path / "ds", val=True)
    load_folder(root, decode_size=SIZE, decoded_cache=cached)
    data = load_folder(root, decode_size=SIZE, decoded_cache=cached)
    entry = next(e for e in _entries(cached) if e.name.startswith("train-"))
    # The tensor's memory is a mapping of the cache file, not a private array.
    assert _mapped_from(data.train_images) == str((entry / cache.IMAGES).resolve())


def _mapped_from(tensor: torch.Tensor) -> str:
    """The file whose mapping holds ``tensor``'s first and last bytes ('', '[heap]'...: anonymous memory)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("needs Linux's /proc/self/maps")
    regions = [line.split() for line in maps.read_text().splitlines()]
    found = set()
    for address in (tensor.data_ptr(), tensor.data_ptr() + tensor.nbytes - 1):
        found |= {(fields[5] if len(fields) > 5 else "") for fields in regions
                  if int(fields[0].split("-")[0], 16) <= address < int(fields[0].split("-")[1], 16)}
    assert len(found) == 1, found
    return found.pop()


def test_a_study_trains_identically_from_the_cache(tmp_path, cached):
    from tinyscale.space.recipe import Recipe
    from tinyscale.train.config import TrainConfig
    from tinyscale.train.trainer import train_recipe

    root = _jpeg_folder(tmp_path / "ds", per_class=16)
    in_ram = load_folder(root, seed=1, decode_size=SIZE)
    mapped = load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    _same_data(in_ram, mapped)
    config = TrainConfig(steps=6, batch_size=8, threads=1, bn_calibration_images=32, translate=2, flip=True)
    for r in (1.0, 0.75):  # at the decode size, and resized
        recipe = Recipe(r=r, w=0.25, d=0.25, base_resolution=SIZE, num_classes=3)
        a, b = train_recipe(recipe, in_ram, config, seed=5), train_recipe(recipe, mapped, config, seed=5)
        assert a.failed is None
        assert (a.accuracy, a.loss, a.train_loss) == (b.accuracy, b.loss, b.train_loss)


def test_worker_data_uses_the_cache_and_other_sources_work_as_before(tmp_path, cached, monkeypatch, capsys):
    monkeypatch.setenv("TINYSCALE_DATA_CACHE", str(cached))
    root = _jpeg_folder(tmp_path / "ds")
    data = worker_data(DataSpec(str(root), seed=2, decode_size=SIZE))
    assert "decoding" in capsys.readouterr().err and len(_entries(cached)) == 1
    _same_data(load_folder(root, seed=2, decode_size=SIZE), data)
    generated = worker_data(DataSpec("generated", seed=1, train_size=20, val_size=10))
    assert len(generated.train_labels) == 20 and generated.source == "generated"
    monkeypatch.setenv("TINYSCALE_DATA_CACHE", "off")
    assert cache.cache_root() is None
    off = DataSpec(str(root), seed=3, decode_size=SIZE).load()
    assert off.train_images.untyped_storage().nbytes() == off.train_images.numel()  # an ordinary tensor


def test_small_sets_stay_in_ram_by_default(tmp_path):
    root = _jpeg_folder(tmp_path / "ds")
    load_folder(root, decode_size=SIZE, decoded_cache=tmp_path / "cache")  # ~23 KB decoded
    assert not (tmp_path / "cache").exists()


def test_an_unwritable_cache_directory_falls_back_to_ram_with_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cache, "MIN_CACHED_BYTES", 0)
    root = _jpeg_folder(tmp_path / "ds")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    data = load_folder(root, decode_size=SIZE, decoded_cache=blocked / "cache")
    assert "cannot write the decoded cache" in capsys.readouterr().err
    _same_data(load_folder(root, decode_size=SIZE), data)


@pytest.mark.parametrize("change", ["added", "removed", "modified"])
def test_a_changed_folder_rebuilds_the_cache(tmp_path, cached, capsys, change):
    root = _jpeg_folder(tmp_path / "ds")
    load_folder(root, decode_size=SIZE, decoded_cache=cached)
    capsys.readouterr()
    target = root / "train" / "class2" / "004.jpg"
    if change == "added":
        Image.new("RGB", (20, 20), (9, 99, 199)).save(root / "train" / "class0" / "new.jpg")
    elif change == "removed":
        target.unlink()
    else:
        Image.new("RGB", (20, 20), (200, 10, 10)).save(target)
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))  # a coarse clock must still see it
    data = load_folder(root, decode_size=SIZE, decoded_cache=cached)
    message = capsys.readouterr().err
    assert f"is stale (1 file {change}); rebuilding" in message and len(message.strip().splitlines()[0]) > 0
    _same_data(load_folder(root, decode_size=SIZE), data)
    assert len(_entries(cached)) == 1  # replaced, not added beside the old one
    assert not [p for p in cached.iterdir() if p.name.startswith(".")]  # no temporary or old folder left


def _damage(entry: Path, how: str) -> None:
    images = entry / cache.IMAGES
    if how == "truncated":
        os.truncate(images, images.stat().st_size - 100)
    elif how == "tampered":
        with open(images, "r+b") as fh:
            fh.seek(images.stat().st_size // 2)
            byte = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([byte[0] ^ 0xFF]))
    elif how == "manifest":
        (entry / cache.MANIFEST).write_text('{"kind": "tinyscale.decoded", "format"')
    else:  # a manifest that lies about the shape
        manifest = json.loads((entry / cache.MANIFEST).read_text())
        manifest["shape"][2] += 1
        (entry / cache.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("how, said", [("truncated", "truncated?"), ("tampered", "sample checksum"),
                                       ("manifest", "unreadable manifest"), ("shape", "declares shape")])
def test_a_damaged_cache_is_detected_and_rebuilt_with_a_message(tmp_path, cached, capsys, how, said):
    root = _jpeg_folder(tmp_path / "ds")
    expected = load_folder(root, seed=1, decode_size=SIZE)
    load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    capsys.readouterr()
    (entry,) = _entries(cached)
    _damage(entry, how)
    data = load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    lines = capsys.readouterr().err.strip().splitlines()
    assert said in lines[0] and lines[0].endswith("rebuilding") and str(entry) in lines[0]
    _same_data(expected, data)
    load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    assert capsys.readouterr().err == ""  # the rebuilt entry is trusted again


def _listing(root: Path) -> tuple[Path, list[Path], list[int], list[str]]:
    train = root / "train"
    names = sorted(p.name for p in train.iterdir())
    files = [f for c in names for f in sorted((train / c).iterdir())]
    return train, files, [names.index(f.parent.name) for f in files], names


def test_an_exception_mid_build_leaves_no_readable_cache(tmp_path):
    root = _jpeg_folder(tmp_path / "ds")
    train, files, labels, names = _listing(root)
    calls = []

    def failing(path, size):
        calls.append(path)
        if len(calls) > 5:
            raise RuntimeError("injected")
        return torch.zeros((3, size, size), dtype=torch.uint8)

    with pytest.raises(RuntimeError, match="injected"):
        cache.decode_cached(train, files, labels, names, SIZE, failing, directory=tmp_path / "cache", min_bytes=0,
                            progress=False)
    assert list((tmp_path / "cache").iterdir()) == [tmp_path / "cache" / f"{cache.slot_path(train, SIZE, tmp_path).name}.lock"]


BUILDER = textwrap.dedent("""
    import hashlib, sys, time
    from pathlib import Path
    import numpy as np
    from PIL import Image
    import tinyscale.data.cache as cache

    root, directory, delay = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])

    def slow_decode(path, size):
        time.sleep(delay)
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((size, size))).transpose(2, 0, 1).copy()

    names = sorted(p.name for p in root.iterdir())
    files = [f for c in names for f in sorted((root / c).iterdir())]
    labels = [names.index(f.parent.name) for f in files]
    got = cache.decode_cached(root, files, labels, names, 16, slow_decode, directory=directory, min_bytes=0,
                              processes=0, progress=False)
    print(hashlib.sha256(np.ascontiguousarray(got.images).data).hexdigest(), got.used.tolist() == list(range(len(files))))
""")


def _builder(tmp_path: Path, root: Path, delay: float) -> subprocess.Popen:
    script = tmp_path / "build.py"
    script.write_text(BUILDER)
    return subprocess.Popen([sys.executable, str(script), str(root), str(tmp_path / "cache"), str(delay)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_killed_build_leaves_no_readable_cache_and_the_next_build_cleans_up(tmp_path):
    root = _jpeg_folder(tmp_path / "ds", per_class=12) / "train"
    proc = _builder(tmp_path, root, delay=0.2)  # 36 files: ~7 s
    deadline = time.monotonic() + 60
    while not list((tmp_path / "cache").glob(".*.tmp-*/images.u8")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # some rows written
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (leftover,) = (tmp_path / "cache").glob(".*.tmp-*")
    slot = cache.slot_path(root, SIZE, tmp_path / "cache")
    assert not slot.exists()
    # The next build ignores the leftover, removes it, and writes a complete entry.
    done = _builder(tmp_path, root, delay=0.0)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "decoding 36 images" in err and not leftover.exists()
    assert (slot / cache.MANIFEST).exists() and out.split()[1] == "True"


def test_two_processes_building_one_cache_at_once_end_with_one_valid_entry(tmp_path):
    root = _jpeg_folder(tmp_path / "ds", per_class=12) / "train"
    procs = [_builder(tmp_path, root, delay=0.03) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in results]
    digests = {out.split()[0] for out, _ in results}
    assert len(digests) == 1  # identical data in both
    # flock: one decoded, the other waited and mapped its entry.
    assert sum("decoding 36 images" in err for _, err in results) == 1
    assert len(_entries(tmp_path / "cache")) == 1
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]
    expected = np.stack([np.asarray(Image.open(f).convert("RGB").resize((SIZE, SIZE))).transpose(2, 0, 1)
                         for f in _listing(root.parent)[1]])
    assert digests == {hashlib.sha256(expected.tobytes()).hexdigest()}


def test_worker_processes_decode_the_same_bytes_as_threads(tmp_path, cached, monkeypatch):
    monkeypatch.setenv("TINYSCALE_DECODE_PROCESSES", "2")
    assert decode_pool.default_processes() == 2
    root = _jpeg_folder(tmp_path / "ds")
    data = load_folder(root, decode_size=SIZE, decoded_cache=cached)
    (entry,) = _entries(cached)
    assert json.loads((entry / cache.MANIFEST).read_text())["processes"] == 2
    _same_data(load_folder(root, decode_size=SIZE), data)
    monkeypatch.setenv("TINYSCALE_DECODE_PROCESSES", "two")
    with pytest.raises(ValueError, match="whole number"):
        decode_pool.default_processes()


def test_data_command_reports_classes_splits_skips_and_the_cache(tmp_path, cached, capsys):
    from tinyscale.cli import main

    root = _jpeg_folder(tmp_path / "ds", val=True)
    (root / "train" / "class0" / "broken.png").write_bytes(b"\x89PNG nope")
    assert main(["data", str(root), "--decode-size", str(SIZE), "--cache-dir", str(cached), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == ["class0", "class1", "class2"]
    assert (out["train"], out["val"]) == (21, 9) and out["val_source"] == "val/"
    assert out["per_class"]["val"] == {"class0": 3, "class1": 3, "class2": 3}
    assert len(out["skipped"]) == 1 and "broken.png" in out["skipped"][0]
    assert [Path(e["path"]).name.split("-")[0] for e in out["cache"]] == ["train", "val"]
    assert [e["images"] for e in out["cache"]] == [21, 9]
    assert out["cache"][0]["image_bytes"] == 21 * 3 * SIZE * SIZE
    assert main(["data", str(root), "--decode-size", str(SIZE), "--cache-dir", str(cached)]) == 0
    text = capsys.readouterr().out
    assert "classes  3, decoded at 16 px" in text and "train 21, val 9 (val/)" in text
    assert "broken.png" in text and f"cache    {out['cache'][0]['path']}: 21 images" in text
    assert main(["data", str(tmp_path / "missing")]) == 2


# ------------------------------------------------------------------------------ the held-out split of a folder without val/
def _split_before_issue_27(images: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int):
    """`split_validation` as it was when each worker copied the split (commit 796523b), kept here
    as the reference the shared split must reproduce image for image."""
    n = len(images)
    n_val = max(1, round(n * fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def _numbered_folder(root: Path, classes: int = 3, per_class: int = 9) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat-colour PNGs, the k-th readable file in the loader's order coloured by k (lossless, so
    it decodes to exactly that colour), plus one unreadable file; the images and labels a
    loader must decode, in file order, built without decoding anything."""
    images, labels = [], []
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            colour = (len(images) % 256, 255 - len(images) % 256, 40 * c)
            Image.new("RGB", (12, 12), colour).save(folder / f"{i:03d}.png")
            images.append(torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, SIZE, SIZE))
            labels.append(c)
    (root / "class1" / "zz-broken.png").write_bytes(b"\x89PNG nope")
    return torch.stack(images), torch.tensor(labels)


@pytest.mark.parametrize("seed, fraction", [(0, 0.1), (3, 0.25), (7, 0.5)])
def test_the_split_holds_the_images_the_old_split_function_held(tmp_path, cached, seed, fraction):
    images, labels = _numbered_folder(tmp_path / "ds")
    (train, train_labels), (val, val_labels) = _split_before_issue_27(images, labels, fraction, seed)
    for where in (None, cached):  # in memory, and slices of the cache's map
        with pytest.warns(UserWarning, match="1 unreadable"):
            data = load_folder(tmp_path / "ds", seed=seed, val_fraction=fraction, decode_size=SIZE,
                               decoded_cache=where)
        for name, expected in (("train_images", train), ("train_labels", train_labels), ("val_images", val),
                               ("val_labels", val_labels)):
            assert torch.equal(getattr(data, name), expected), (where, name)
    assert len(list(next(iter(_entries(cached))).glob("rows-*.u8"))) == 1


def test_a_held_out_split_is_two_slices_of_one_shared_map(tmp_path, cached, capsys):
    root = _jpeg_folder(tmp_path / "ds", per_class=12)  # no val/
    load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)  # decodes, and writes the split's rows
    capsys.readouterr()
    data = load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    assert capsys.readouterr().err == ""  # nothing decoded or written again
    (entry,) = _entries(cached)
    (rows,) = entry.glob("rows-*.u8")
    train, val = data.train_images, data.val_images
    # One storage, val right after train: no private copy of either split, in this process or any other.
    assert train.untyped_storage().data_ptr() == val.untyped_storage().data_ptr()
    assert val.data_ptr() == train.data_ptr() + train.nbytes
    assert _mapped_from(train) == _mapped_from(val) == str(rows.resolve())
    assert rows.stat().st_size == (len(train) + len(val)) * 3 * SIZE * SIZE
    # Another seed is another row file beside it; the first stays.
    _same_data(load_folder(root, seed=2, decode_size=SIZE), load_folder(root, seed=2, decode_size=SIZE,
                                                                        decoded_cache=cached))
    assert len(list(entry.glob("rows-*.u8"))) == 2
    from tinyscale.cli import main

    capsys.readouterr()
    assert main(["data", str(root), "--decode-size", str(SIZE), "--cache-dir", str(cached), "--json"]) == 0
    (described,) = json.loads(capsys.readouterr().out)["cache"]
    assert (described["split_files"], described["split_bytes"]) == (3, 3 * rows.stat().st_size)  # seeds 1, 2 and 0


@pytest.mark.parametrize("how, said", [("truncated", "truncated?"), ("tampered", "sample checksum")])
def test_a_damaged_row_file_is_detected_and_written_again(tmp_path, cached, capsys, how, said):
    root = _jpeg_folder(tmp_path / "ds", per_class=12)
    expected = load_folder(root, seed=1, decode_size=SIZE)
    load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    (entry,) = _entries(cached)
    (rows,) = entry.glob("rows-*.u8")
    killed = entry / f".{rows.name}.tmp-1-dead"  # what a write killed half-way leaves
    killed.write_bytes(b"half")
    if how == "truncated":
        os.truncate(rows, rows.stat().st_size - 1)
    else:
        with open(rows, "r+b") as fh:  # row 0 is in every sample
            fh.write(bytes(255 - b for b in fh.read(8)))
    capsys.readouterr()
    data = load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert said in line and line.endswith("writing it again") and rows.name in line
    _same_data(expected, data)
    assert not killed.exists() and len(list(entry.glob("rows-*.u8"))) == 1


def test_a_row_file_that_cannot_be_written_leaves_the_split_in_memory_with_a_note(tmp_path, cached, capsys,
                                                                                   monkeypatch):
    def disk_full(path, images, order):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "write_rows", disk_full)
    root = _jpeg_folder(tmp_path / "ds", per_class=12)
    data = load_folder(root, seed=1, decode_size=SIZE, decoded_cache=cached)
    assert "No space left on device); the split is copied in memory" in capsys.readouterr().err
    _same_data(load_folder(root, seed=1, decode_size=SIZE), data)
    assert not _mapped_from(data.train_images).startswith("/")  # private memory, no file behind it
    assert not list(next(iter(_entries(cached))).glob("*rows-*"))


def test_a_compare_on_a_cached_dataset_decodes_nothing_again(tmp_path, cached, capsys, monkeypatch):
    # What a study leaves in the cache is what every later command maps: a compare (a new
    # process: no data in memory) finds the entry and the split's rows and decodes no image.
    import tinyscale.data.datasets as datasets
    import tinyscale.study.executors as executors
    from tinyscale.evaluate.compare import CompareSettings, run_comparison
    from tinyscale.study.plan import StudyPlan
    from tinyscale.study.store import Study
    from tinyscale.study.trial import StudyConfig

    monkeypatch.setenv("TINYSCALE_DATA_CACHE", str(cached))
    decoded = []
    real = datasets._decode
    monkeypatch.setattr(datasets, "_decode", lambda path, size: decoded.append(path) or real(path, size))
    root = _jpeg_folder(tmp_path / "ds", per_class=12)
    config = StudyConfig(data=str(root), base_resolution=SIZE, num_classes=3, r_range=(0.5, 1.0), steps=2, batch_size=8)
    StudyPlan.resolve(config)  # the study's own first load
    assert len(decoded) == 36 and "decoding 36 images" in capsys.readouterr().err
    with Study.create(tmp_path / "study", config):
        pass
    decoded.clear()
    monkeypatch.setattr(executors, "_DATA_CACHE", {})
    settings = CompareSettings(ratios=(0.25,), strategies=("uniform",), seeds=(0,), steps=2, batch_size=8, threads=1)
    comparison = run_comparison(tmp_path / "study", settings, progress=False)
    assert decoded == [] and "decoding" not in capsys.readouterr().err
    assert comparison is not None and len(_entries(cached)) == 1
