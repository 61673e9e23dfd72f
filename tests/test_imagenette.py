"""`--data imagenette` on small generated stand-ins (never the real Imagenette: it is not for CI):
found through $TINYSCALE_IMAGENETTE or the cache, the same labels whether its folders are
WordNet ids (the official archive) or class names (the copy on these machines), and the official
archive's download path fed from a local file:// URL: checked against both digests, unpacked
whole or not at all."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

import tinyscale.data.published as published
from tinyscale.data.datasets import NAMED_DATASETS, load_data
from tinyscale.data.published import IMAGENETTE_CLASSES, imagenette_dir

from _cli import cli

SPLITS = {"train": 2, "val": 1}  # images per class
# The official label order (by WordNet id) is not the order of the class names: a loader that
# sorted the renamed copy's folders would give english_springer label 3, not 1.
assert [name for _, name in IMAGENETTE_CLASSES] != sorted(name for _, name in IMAGENETTE_CLASSES)


def _colour(label: int, i: int) -> tuple[int, int, int]:
    return (20 * label + i, 250 - 20 * label, 90)


def _fake_imagenette(root: Path, *, names: bool) -> Path:
    """10 classes, flat-colour PNGs whose colour says their true class; folders are the class
    names (``names``) or the WordNet ids, as in the official archive (``.JPEG`` files there)."""
    for label, (wnid, name) in enumerate(IMAGENETTE_CLASSES):
        for split, count in SPLITS.items():
            folder = root / split / (name if names else wnid)
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (10, 10), _colour(label, i)).save(folder / f"{wnid}_{i}.{'png' if names else 'JPEG'}",
                                                                   format="PNG")
    return root


def _true_labels(images: torch.Tensor) -> list[int]:
    """The class each image was drawn as, read back from its red and green levels."""
    return [(250 - int(g)) // 20 for g in images[:, 1, 4, 4]]


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """An empty cache and an archive URL that cannot be fetched: nothing reaches the network."""
    monkeypatch.setenv("TINYSCALE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TINYSCALE_DATA_CACHE", "off")
    monkeypatch.delenv("TINYSCALE_IMAGENETTE", raising=False)
    monkeypatch.setattr(published, "IMAGENETTE_URL", (tmp_path / "nowhere").as_uri() + "/")
    return tmp_path / "cache"


@pytest.mark.parametrize("names", [False, True], ids=["wordnet-folders", "class-name-folders"])
def test_either_copy_gives_the_official_label_order(tmp_path, no_download, monkeypatch, names):
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(_fake_imagenette(tmp_path / "nette", names=names)))
    data = load_data("imagenette", decode_size=8)
    assert data.class_names == tuple(name for _, name in IMAGENETTE_CLASSES)
    assert data.class_names[1] == "english_springer"
    assert len(data.train_labels) == 20 and len(data.val_labels) == 10  # val/ is the held-out split
    for images, labels in ((data.train_images, data.train_labels), (data.val_images, data.val_labels)):
        assert labels.tolist() == _true_labels(images)
    assert data.source.startswith("imagenette (") and str(tmp_path / "nette") in data.source


def test_a_study_config_names_it_and_its_classes_are_checked(tmp_path, no_download, monkeypatch):
    from tinyscale.study.plan import NAMED_DATA, check_data, resolve_data
    from tinyscale.study.trial import StudyConfig

    assert set(NAMED_DATA) == set(NAMED_DATASETS)  # plan keeps its own torch-free copy of the names
    assert resolve_data("imagenette") == "imagenette"  # a name, not a path under the working directory
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(_fake_imagenette(tmp_path / "nette", names=True)))
    assert check_data(StudyConfig(data="imagenette", base_resolution=8, num_classes=10)).num_classes == 10
    with pytest.raises(ValueError, match="has 10 classes but the study is configured for 3"):
        check_data(StudyConfig(data="imagenette", base_resolution=8, num_classes=3))


def test_where_it_is_looked_for(tmp_path, no_download, monkeypatch, capsys):
    with pytest.raises(ValueError, match="not in .*downloads are off.*TINYSCALE_IMAGENETTE") as err:
        imagenette_dir(download=False)
    assert "\n" not in str(err.value)
    cached = _fake_imagenette(no_download / "imagenette2-160", names=False)
    assert imagenette_dir(download=False) == cached
    # An override that holds no train/ and val/ is said and passed over, as Fashion-MNIST's is.
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(tmp_path / "empty"))
    assert imagenette_dir(download=False) == cached
    assert "TINYSCALE_IMAGENETTE" in capsys.readouterr().err
    override = _fake_imagenette(tmp_path / "nette", names=True)
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(override))
    assert imagenette_dir(download=False) == override


def test_an_incomplete_copy_is_one_clear_error(tmp_path, no_download, monkeypatch):
    root = _fake_imagenette(tmp_path / "nette", names=False)
    (root / "val" / "n03888257").rename(root / "val" / "parachutes")
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(root))
    with pytest.raises(ValueError, match=r"not a complete Imagenette: it lacks val/n03888257 \(folders"):
        load_data("imagenette", decode_size=8)


# ------------------------------------------------------------------------------ the download path
def _archive(path: Path, source: Path, *, extra: dict[str, bytes] | None = None) -> dict:
    """A .tgz of ``source`` as ``imagenette2-160/...`` (plus ``extra`` raw members); its digests."""
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname="imagenette2-160")
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = path.read_bytes()
    return {path.name: (hashlib.md5(raw).hexdigest(), hashlib.sha256(raw).hexdigest())}


@pytest.fixture
def served(tmp_path, no_download, monkeypatch):
    """A fake official archive behind a file:// URL, with its true digests as the published ones."""
    server = tmp_path / "server"
    server.mkdir()
    digests = _archive(server / "imagenette2-160.tgz", _fake_imagenette(tmp_path / "src", names=False))
    monkeypatch.setattr(published, "IMAGENETTE_URL", server.as_uri() + "/")
    monkeypatch.setattr(published, "IMAGENETTE_FILES", digests)
    return server


def test_the_archive_is_downloaded_checked_and_unpacked_once(served, no_download, capsys):
    data = load_data("imagenette", decode_size=8)
    assert "downloading Imagenette" in capsys.readouterr().err
    assert data.train_labels.tolist() == _true_labels(data.train_images)
    assert sorted(p.name for p in no_download.iterdir()) == ["imagenette2-160", "imagenette2-160.lock"]
    (served / "imagenette2-160.tgz").unlink()  # the next load finds the unpacked folder
    again = load_data("imagenette", decode_size=8)
    assert capsys.readouterr().err == ""
    assert torch.equal(again.train_images, data.train_images)


@pytest.mark.parametrize("wrong", [0, 1], ids=["md5", "sha256"])
def test_an_archive_with_a_wrong_digest_is_refused_and_nothing_is_kept(served, no_download, monkeypatch, wrong):
    ((name, digests),) = published.IMAGENETTE_FILES.items()
    bad = tuple("0" * len(d) if i == wrong else d for i, d in enumerate(digests))
    monkeypatch.setattr(published, "IMAGENETTE_FILES", {name: bad})
    with pytest.raises(ValueError, match=f"downloaded {name} has {['MD5', 'SHA256'][wrong]} ") as err:
        load_data("imagenette", decode_size=8)
    assert "\n" not in str(err.value) and "not kept" in str(err.value)
    assert sorted(p.name for p in no_download.iterdir()) == ["imagenette2-160.lock"]  # no archive, part or folder


@pytest.mark.parametrize("damage", ["truncated", "escapes"])
def test_an_archive_that_cannot_be_unpacked_whole_leaves_no_folder(tmp_path, served, no_download, monkeypatch, damage):
    archive = served / "imagenette2-160.tgz"
    if damage == "truncated":
        archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        raw = archive.read_bytes()
        digests = {archive.name: (hashlib.md5(raw).hexdigest(), hashlib.sha256(raw).hexdigest())}
    else:  # a member that would be written outside the folder it is unpacked into
        digests = _archive(archive, tmp_path / "src", extra={"../escaped.txt": b"x"})
    monkeypatch.setattr(published, "IMAGENETTE_FILES", digests)
    with pytest.raises(ValueError, match="could not unpack") as err:
        load_data("imagenette", decode_size=8)
    assert "\n" not in str(err.value)
    assert not (no_download / "imagenette2-160").exists() and not (no_download.parent / "escaped.txt").exists()
    assert not list(no_download.glob(".imagenette2-160.tmp-*"))


def test_the_data_command_describes_it(tmp_path, no_download, monkeypatch, capsys):
    monkeypatch.setenv("TINYSCALE_IMAGENETTE", str(_fake_imagenette(tmp_path / "nette", names=True)))
    code, out, _ = cli(capsys, "data", "imagenette", "--decode-size", 8, "--no-cache", "--json")
    assert code == 0
    described = json.loads(out)
    assert described["classes"][:2] == ["tench", "english_springer"]
    assert (described["train"], described["val"], described["val_source"]) == (20, 10, "val/")
    assert described["per_class"]["val"]["parachute"] == 1
    code, _, err = cli(capsys, "data", "fashion-mnist")
    assert code == 2 and "not a class-per-folder dataset" in err
