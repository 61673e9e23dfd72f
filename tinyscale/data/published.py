"""The published datasets, Fashion-MNIST and Imagenette: where they are found, or downloaded once
and checksummed.

Both are found the same way, in this order: the folder an environment variable names
(``$TINYSCALE_FASHION_MNIST``, ``$TINYSCALE_IMAGENETTE``), the places a system package installs
them (Debian's ``dataset-fashion-mnist``), the user's cache (`cache_dir()`); a candidate is taken
only when it is complete, and an override that is not is said on stderr and passed over. Failing
all, the official files are downloaded once into the cache and kept only when every checksum
matches, so a broken or forged download is never mistaken for the data.

- Fashion-MNIST (MIT, Zalando Research): four gzipped IDX files, each checked against its
  published MD5.
- Imagenette (fast.ai, Apache 2.0; ImageNet's images): the 160-px archive of the v2 split,
  ``imagenette2-160.tgz``, checked against two digests from two independent sources, then
  unpacked into a temporary folder and renamed into place (a killed unpack leaves no folder
  that is read). Class-per-folder (``train/``, ``val/``); its folders are WordNet ids. A copy
  whose folders carry the class names instead (as on these machines) gives the same labels:
  the label order is the WordNet ids' order whichever names the folders carry.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import secrets
import shutil
import struct
import tarfile
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from tinyscale.data.cache import SlotLock, cache_dir, say

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# The published MD5 of each official .gz (github.com/zalandoresearch/fashion-mnist README).
# Debian repacks the .gz files (different bytes, same content), so these apply to downloads only.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

IMAGENETTE_URL = "https://s3.amazonaws.com/fast-ai-imageclas/"
IMAGENETTE_FOLDER = "imagenette2-160"
# The archive's MD5 as torchvision's Imagenette dataset lists it (pytorch/vision,
# torchvision/datasets/imagenette.py) and its SHA-256 as TensorFlow Datasets records it
# (tensorflow/datasets, tensorflow_datasets/datasets/imagenette/checksums.tsv; 99,003,388 bytes).
IMAGENETTE_FILES = {
    "imagenette2-160.tgz": ("e793b78cc4c9e9a4ccc0c1155377a412",
                            "64d0c4859f35a461889e0147755a999a48b49bf38a7e0f9bd27003f10db02fe5"),
}
# (WordNet id, class name) in label order: sorted by WordNet id, as the official folders sort.
IMAGENETTE_CLASSES = (
    ("n01440764", "tench"), ("n02102040", "english_springer"), ("n02979186", "cassette_player"),
    ("n03000684", "chain_saw"), ("n03028079", "church"), ("n03394916", "french_horn"),
    ("n03417042", "garbage_truck"), ("n03425413", "gas_pump"), ("n03445777", "golf_ball"),
    ("n03888257", "parachute"),
)


# ------------------------------------------------------------------------------ checksums, downloads
def checksum_problem(path: Path, expected: str | Sequence[str]) -> str | None:
    """Why ``path`` does not match ``expected`` (one or more hex digests: 32 digits MD5, 64
    SHA-256, all computed in one read), or None when every one matches."""
    wanted = (expected,) if isinstance(expected, str) else tuple(expected)
    hashes = [hashlib.md5() if len(digest) == 32 else hashlib.sha256() for digest in wanted]
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            for h in hashes:
                h.update(block)
    for h, digest in zip(hashes, wanted):
        if h.hexdigest() != digest:
            return f"{h.name.upper()} {h.hexdigest()}, expected {digest}"
    return None


def verify_files(directory: Path, checksums: dict[str, str | Sequence[str]]) -> list[str]:
    """Problems (missing file, wrong digest) of the files in ``directory``; empty when all match."""
    problems = []
    for name, expected in checksums.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (problem := checksum_problem(path, expected)) is not None:
            problems.append(f"{name}: {problem}")
    return problems


def download_verified(base_url: str, checksums: dict[str, str | Sequence[str]], directory: Path) -> None:
    """Download each file to ``directory``; a file is kept only when its digests match.

    Files already present with the right digests are not fetched again. A download goes to a
    hidden ``.part`` file first; a mismatch removes it and raises ValueError, so a broken
    download is never mistaken for the data and nothing half-written stays behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in checksums.items():
        target = directory / name
        if target.is_file() and checksum_problem(target, expected) is None:
            continue
        partial = directory / f".{name}.part"
        try:
            with urllib.request.urlopen(base_url + name, timeout=60) as response, open(partial, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ValueError(f"could not download {base_url + name}: {exc}") from None
        problem = checksum_problem(partial, expected)
        if problem is not None:
            partial.unlink(missing_ok=True)
            raise ValueError(f"downloaded {name} has {problem}; not kept")
        os.replace(partial, target)


def find_installed(what: str, variable: str, places: Sequence[Path], complete: Callable[[Path], bool]) -> Path | None:
    """The first complete folder among ``$variable`` and ``places``; None when there is none. A
    set override that is not complete is said on stderr (it is passed over, not an error)."""
    if os.environ.get(variable):
        override = Path(os.environ[variable]).expanduser()
        if complete(override):
            return override
        say(f"{variable}={override} does not hold {what}; passed over")
    return next((place for place in places if complete(place)), None)


# ------------------------------------------------------------------------------ Fashion-MNIST
def read_idx(path: Path, expected_magic: int):
    """An IDX file (gzip-compressed) as a uint8 tensor of its declared shape."""
    import torch

    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise ValueError(f"{path} is too short to be an IDX file")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        raise ValueError(f"{path} has IDX magic {magic:#x}, expected {expected_magic:#x}")
    ndim = magic & 0xFF
    dims = (count,) + struct.unpack(f">{ndim - 1}I", raw[8:4 + 4 * ndim])
    header = 4 + 4 * ndim
    expected_bytes = 1
    for dim in dims:
        expected_bytes *= dim
    if len(raw) - header != expected_bytes:
        raise ValueError(f"{path} holds {len(raw) - header} bytes of data, its header declares {expected_bytes}")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)


def fashion_mnist_dir(download: bool = True) -> Path:
    """A directory holding the four Fashion-MNIST files (Debian's, the cache, or a fresh download)."""
    target = cache_dir() / "fashion-mnist"
    found = find_installed("the four Fashion-MNIST files", "TINYSCALE_FASHION_MNIST", [DEBIAN_FASHION_MNIST, target],
                           lambda d: all((d / name).is_file() for name in FASHION_MNIST_FILES))
    if found is not None:
        return found
    if not download:
        raise ValueError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist) and downloads are off")
    download_verified(FASHION_MNIST_URL, FASHION_MNIST_FILES, target)
    return target


# ------------------------------------------------------------------------------ Imagenette
def has_splits(directory: Path) -> bool:
    return (directory / "train").is_dir() and (directory / "val").is_dir()


def imagenette_dir(download: bool = True) -> Path:
    """A folder holding Imagenette's ``train/`` and ``val/``: ``$TINYSCALE_IMAGENETTE``, the
    cache, or the official archive downloaded, checked and unpacked into the cache (once)."""
    root = cache_dir()
    target = root / IMAGENETTE_FOLDER
    found = find_installed("Imagenette (train/ and val/ class folders)", "TINYSCALE_IMAGENETTE", [target], has_splits)
    if found is not None:
        return found
    if not download:
        raise ValueError(f"Imagenette is not in {target} and downloads are off; set TINYSCALE_IMAGENETTE to a "
                         "folder holding its train/ and val/")
    if target.exists():
        raise ValueError(f"{target} exists but holds no train/ and val/ folders; remove it to download Imagenette again")
    root.mkdir(parents=True, exist_ok=True)
    with SlotLock(target):  # one process downloads; the others wait, then find it unpacked
        if has_splits(target):
            return target
        for leftover in root.glob(f".{target.name}.tmp-*"):  # a killed unpack's (we hold the lock)
            shutil.rmtree(leftover, ignore_errors=True)
        (name,) = IMAGENETTE_FILES
        say(f"downloading Imagenette ({name}, about 94 MiB, once) from {IMAGENETTE_URL} into {root}")
        download_verified(IMAGENETTE_URL, IMAGENETTE_FILES, root)
        unpack(root / name, target)
        (root / name).unlink()  # the unpacked folder is what is read; the archive would be a second copy
    return target


def unpack(archive: Path, target: Path) -> None:
    """Unpack the tar ``archive``, whose one top folder holds ``train/`` and ``val/``, as
    ``target``: into a temporary folder beside it, then renamed, so ``target`` is complete or
    absent. Members that would land outside it (absolute paths, ``..``, links out) are refused."""
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"could not unpack {archive}: {type(exc).__name__}: {exc}") from None
        tops = [p for p in tmp.iterdir() if p.is_dir() and has_splits(p)]
        if len(tops) != 1:
            raise ValueError(f"{archive} does not hold one folder with train/ and val/; not unpacked")
        os.rename(tops[0], target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def imagenette_classes(directory: Path) -> tuple[tuple[str, str], ...]:
    """(folder, class name) of each Imagenette class in label order, for a copy whose folders are
    the WordNet ids (the official archive) or the class names (a renamed copy); ValueError
    naming what is missing when neither set is complete in ``train/`` and ``val/``."""
    for column in (0, 1):
        folders = [pair[column] for pair in IMAGENETTE_CLASSES]
        missing = [f"{split}/{f}" for split in ("train", "val") for f in folders if not (directory / split / f).is_dir()]
        if not missing:
            return tuple((folder, name) for folder, (_, name) in zip(folders, IMAGENETTE_CLASSES))
        if column == 0 and len(missing) < 2 * len(folders):
            break  # some WordNet folders are there: a damaged official copy, not a renamed one
    raise ValueError(f"{directory} is not a complete Imagenette: it lacks {', '.join(missing[:3])}"
                     f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''} (folders are WordNet ids "
                     "or class names)")
