"""Image data for the study: Fashion-MNIST, class-per-folder datasets, and a generated toy set.

Every source is decoded once into uint8 tensors (N, C, H, W) with C = 1 (grayscale) or 3;
`ImageData.at(resolution)` resizes once per resolution and caches the result, so training
only gathers, augments and normalises tensors — it never decodes in the loop. Grayscale data
is handed out as a 3-channel *view* (no copy), because the networks take RGB.

Fashion-MNIST (MIT, Zalando Research) comes from Debian's ``dataset-fashion-mnist`` files when
installed, else from the user's cache, else it is downloaded once from the official source and
kept only if every file's MD5 matches the published checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from tinyscale.data.cache import cache_dir, decode_cached
from tinyscale.limits import MAX_IMAGE_PIXELS

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
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
DEFAULT_DECODE_SIZE = 64
# A worker keeps one resized copy of the splits (the resolution it trains now) up to this size;
# a larger dataset is resized batch by batch (`ImageData.for_training`), which costs about 3 ms
# per 64 images (64 -> 48 px, one core): a few per cent of a step.
RESIZED_COPY_LIMIT = 256 * 2**20
_RESIZE_CHUNK = 4096  # images resized per interpolate call (bounds the float32 working set)


@dataclass
class ImageData:
    """Decoded images and labels, split into train and validation.

    ``train_images``/``val_images``: uint8 (N, C, H, W), C in {1, 3}; labels int64 (N,).
    ``skipped``: files that could not be decoded (path and reason), reported, never fatal.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    class_names: tuple[str, ...]
    source: str
    skipped: tuple[str, ...] = ()
    _by_resolution: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for name in ("train", "val"):
            images, labels = getattr(self, f"{name}_images"), getattr(self, f"{name}_labels")
            if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
                raise ValueError(f"{name} images must be uint8 (N, 1|3, H, W), got {images.dtype} {tuple(images.shape)}")
            if len(images) == 0:
                raise ValueError(f"the {name} split of {self.source} is empty")
            if labels.shape != (len(images),):
                raise ValueError(f"{name} labels must have shape ({len(images)},), got {tuple(labels.shape)}")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int:
        return self.train_images.shape[-1]

    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images (in 0..1), for the 3 RGB inputs."""
        if "mean_std" not in self._by_resolution:
            # A strided sample: folder datasets are class-sorted, so the first images would
            # describe the first classes only.
            step = -(-len(self.train_images) // 10000)
            sample = self.train_images[::step]
            if sample.numel() * 4 <= RESIZED_COPY_LIMIT:
                x = sample.float().div_(255)
                mean = x.mean((0, 2, 3)).tolist()
                std = x.std((0, 2, 3)).clamp_min(1e-3).tolist()
            else:  # a float copy of the sample would be larger than a worker may hold: by chunks
                mean, std = _chunked_mean_std(sample)
            if len(mean) == 1:
                mean, std = mean * 3, std * 3
            self._by_resolution["mean_std"] = (tuple(mean), tuple(std))
        return self._by_resolution["mean_std"]

    def at(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) images at ``resolution`` px, uint8 (N, 3, res, res); resized once and kept
        until another resolution is asked for (a worker trains many resolutions in turn, and one
        copy per resolution would grow without bound)."""
        if resolution not in self._by_resolution:
            for key in [k for k in self._by_resolution if isinstance(k, int)]:
                del self._by_resolution[key]
            self._by_resolution[resolution] = (
                resize_images(self.train_images, resolution), resize_images(self.val_images, resolution)
            )
        train, val = self._by_resolution[resolution]
        return train.expand(-1, 3, -1, -1), val.expand(-1, 3, -1, -1)

    def for_training(self, resolution: int) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """(train, val, resize_to): what a run at ``resolution`` gathers its batches from. The
        resized splits (`at`, ``resize_to`` None) while that copy fits in `RESIZED_COPY_LIMIT`;
        beyond it the splits as decoded (a shared map of the decoded cache for a large folder)
        and the resolution each batch is resized to as it is gathered, bit for bit the same
        images, so a worker holds no copy of a large dataset."""
        count = len(self.train_images) + len(self.val_images)
        if self.image_size == resolution or count * self.train_images.shape[1] * resolution**2 <= RESIZED_COPY_LIMIT:
            return (*self.at(resolution), None)
        return self.train_images.expand(-1, 3, -1, -1), self.val_images.expand(-1, 3, -1, -1), resolution

    def subset(self, train_size: int | None = None, val_size: int | None = None, *, seed: int = 0) -> ImageData:
        """A seeded random subset of each split (None keeps the split whole)."""
        gen = torch.Generator().manual_seed(seed)

        def pick(images: torch.Tensor, labels: torch.Tensor, size: int | None, name: str):
            if size is None or size >= len(images):
                return images, labels
            if size < 1:
                raise ValueError(f"{name}_size must be at least 1, got {size}")
            idx = torch.randperm(len(images), generator=gen)[:size].sort().values
            return images[idx].contiguous(), labels[idx].contiguous()

        ti, tl = pick(self.train_images, self.train_labels, train_size, "train")
        vi, vl = pick(self.val_images, self.val_labels, val_size, "val")
        return ImageData(ti, tl, vi, vl, self.class_names, self.source, self.skipped)


def _chunked_mean_std(images: torch.Tensor, chunk: int = 256) -> tuple[list[float], list[float]]:
    """Per-channel mean and (unbiased) std in 0..1 of uint8 (N, C, H, W), accumulated in float64
    chunk by chunk, so no float copy of the whole sample is made (equal to the one-pass result up
    to float summation order)."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].double().div_(255)
        total += x.sum((0, 2, 3))
        squares += x.square().sum((0, 2, 3))
    n = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / n
    var = (squares - n * mean.square()) / max(1, n - 1)
    return mean.tolist(), var.clamp_min(0).sqrt().clamp_min(1e-3).tolist()


def resize_images(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, res, res), antialiased bilinear (no-op at same size)."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = torch.empty((images.shape[0], images.shape[1], resolution, resolution), dtype=torch.uint8,
                      device=images.device)
    for start in range(0, len(images), _RESIZE_CHUNK):
        chunk = images[start:start + _RESIZE_CHUNK].float()
        resized = F.interpolate(chunk, size=(resolution, resolution), mode="bilinear", antialias=True,
                                align_corners=False)
        out[start:start + _RESIZE_CHUNK] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def split_validation(images: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int):
    """A fixed, seeded hold-out: ((train_images, train_labels), (val_images, val_labels))."""
    n = len(images)
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = max(1, round(n * fraction))
    if n - n_val < 1:
        raise ValueError(f"{n} image(s) are too few to hold out a validation split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


# ------------------------------------------------------------------------------ Fashion-MNIST
def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(directory: Path, checksums: dict[str, str]) -> list[str]:
    """Problems (missing file, wrong MD5) of the files in ``directory``; empty when all match."""
    problems = []
    for name, expected in checksums.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif (actual := md5_of(path)) != expected:
            problems.append(f"{name}: MD5 {actual}, expected {expected}")
    return problems


def download_verified(base_url: str, checksums: dict[str, str], directory: Path) -> None:
    """Download each file to ``directory``; a file is kept only when its MD5 matches.

    Files already present with the right checksum are not fetched again. A mismatch removes the
    bad file and raises ValueError, so a broken download is never mistaken for the data.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for name, expected in checksums.items():
        target = directory / name
        if target.is_file() and md5_of(target) == expected:
            continue
        partial = directory / f".{name}.part"
        try:
            with urllib.request.urlopen(base_url + name, timeout=60) as response, open(partial, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise ValueError(f"could not download {base_url + name}: {exc}") from None
        actual = md5_of(partial)
        if actual != expected:
            partial.unlink(missing_ok=True)
            raise ValueError(f"downloaded {name} has MD5 {actual}, expected {expected}; not kept")
        os.replace(partial, target)


def read_idx(path: Path, expected_magic: int) -> torch.Tensor:
    """An IDX file (gzip-compressed) as a uint8 tensor of its declared shape."""
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
    names = list(FASHION_MNIST_FILES)
    candidates = []
    if os.environ.get("TINYSCALE_FASHION_MNIST"):
        candidates.append(Path(os.environ["TINYSCALE_FASHION_MNIST"]))
    candidates += [DEBIAN_FASHION_MNIST, cache_dir() / "fashion-mnist"]
    for directory in candidates:
        if all((directory / n).is_file() for n in names):
            return directory
    if not download:
        raise ValueError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist) and downloads are off")
    target = cache_dir() / "fashion-mnist"
    download_verified(FASHION_MNIST_URL, FASHION_MNIST_FILES, target)
    return target


def load_fashion_mnist(download: bool = True) -> ImageData:
    directory = fashion_mnist_dir(download)

    def images(name: str) -> torch.Tensor:
        return read_idx(directory / name, 0x803).unsqueeze(1)  # (N, 1, 28, 28)

    def labels(name: str) -> torch.Tensor:
        out = read_idx(directory / name, 0x801).long()
        if out.numel() and int(out.max()) >= len(FASHION_MNIST_CLASSES):
            raise ValueError(f"{directory / name} has label {int(out.max())}; Fashion-MNIST has 10 classes")
        return out

    # The official test set is the held-out split: it is what "given validation" means here.
    return ImageData(
        images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
        images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"),
        FASHION_MNIST_CLASSES, source=f"fashion-mnist ({directory})",
    )


# ------------------------------------------------------------------------------ class folders
def _decode(path: Path, size: int) -> torch.Tensor | str:
    """One image as uint8 (3, size, size) — centre square crop, then resize — or why it failed."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # reads the header only
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:  # checked before a pixel is decoded
                raise ValueError(f"{w} x {h} px is more than the {MAX_IMAGE_PIXELS:,} pixels an image may have")
            im = _to_8bit(im).convert("RGB")
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
            data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
            return data.reshape(size, size, 3).permute(2, 0, 1).contiguous()
    except Exception as exc:  # PIL raises many types on damaged files; each is a skipped image
        return f"{path}: {type(exc).__name__}: {exc}"


def _to_8bit(im):
    """``im`` in a mode whose values ``convert("RGB")`` reads as 0..255.

    PIL's conversion of 16- and 32-bit integer images clips every value above 255 to white, so
    those are scaled here (0..65535 -> 0..255); floating-point images have no agreed range and
    are refused."""
    from PIL import Image

    if im.mode == "F":
        raise ValueError("32-bit floating-point images are not supported; save it as 8- or 16-bit")
    if im.mode == "I" or im.mode.startswith("I;16"):
        import numpy as np

        # round(v / 257) in integers ((v + 128) // 257: v / 257 is never k + 0.5), in 4 bytes a
        # pixel rather than a float64 copy's 8.
        values = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)
        values += 128
        values //= 257
        return Image.fromarray(values.astype(np.uint8))  # uint8 (H, W): mode L
    return im


def _hidden(path: Path, root: Path) -> bool:
    """Whether ``path`` or a folder between ``root`` and it is hidden (``.ipynb_checkpoints``, ``._x.jpg``)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _image_files(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p, class_dir))


def _decode_split(root: Path, class_names: list[str], size: int, *, every_class: bool = False,
                  decoded_cache: Path | None = None):
    """Decode the images of each class folder under ``root``; with ``every_class``, a class
    without a single readable image is an error naming it (it would be a class no trial can learn).
    With ``decoded_cache`` (a directory), large sets come from the decoded cache there
    (`tinyscale.data.cache`): the same images, mapped from disk instead of held in RAM."""
    files, labels = [], []
    for idx, name in enumerate(class_names):
        class_files = _image_files(root / name) if (root / name).is_dir() else []
        if every_class and not class_files:
            raise ValueError(f"no readable images in class folder {root / name}: it holds no image files "
                             f"({', '.join(IMAGE_SUFFIXES)}); remove it or add images")
        files += class_files
        labels += [idx] * len(class_files)
    cached = decode_cached(root, files, labels, class_names, size, _decode,
                           directory=decoded_cache) if decoded_cache is not None else None
    if cached is not None:
        good, skipped_at = cached.used.tolist(), list(cached.skipped)
        images = torch.from_numpy(cached.images)  # a copy-on-write map: no copy of the pixels
    else:
        from PIL import Image

        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            # PIL's own warning about large images comes before our (lower) limit skips them.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            decoded = list(pool.map(lambda p: _decode(p, size), files))
        good = [i for i, item in enumerate(decoded) if isinstance(item, torch.Tensor)]
        skipped_at = [(i, item) for i, item in enumerate(decoded) if isinstance(item, str)]
        images = torch.stack([decoded[i] for i in good]) if good else torch.empty((0, 3, size, size), dtype=torch.uint8)
    skipped = [why for _, why in skipped_at]
    if every_class:
        readable = {labels[i] for i in good}
        dead = [name for idx, name in enumerate(class_names) if idx not in readable]
        if dead:
            first = next(why for i, why in skipped_at if class_names[labels[i]] == dead[0])
            raise ValueError(f"no readable images in class folder {root / dead[0]}"
                             f"{f' (and {len(dead) - 1} more)' if len(dead) > 1 else ''}; first: {first}")
    return images, torch.tensor([labels[i] for i in good], dtype=torch.long), skipped


def load_folder(path: Path, *, seed: int = 0, val_fraction: float = 0.1, decode_size: int = DEFAULT_DECODE_SIZE,
                decoded_cache: Path | None = None) -> ImageData:
    """A class-per-folder dataset: ``path/train/<class>/*`` (or ``path/<class>/*``), optional ``path/val/<class>/*``.

    ``decoded_cache``: a directory of decoded datasets (`tinyscale.data.cache`) to read large
    sets from (and build there on first use); None decodes in RAM."""
    if not path.exists():
        raise ValueError(f"no dataset at {path}: the path does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; expected train/<class>/ image folders")
    train_root = path / "train" if (path / "train").is_dir() else path
    val_root = path / "val" if (path / "val").is_dir() else None
    class_names = sorted(p.name for p in train_root.iterdir()
                         if p.is_dir() and p.name not in ("train", "val") and not p.name.startswith("."))
    if len(class_names) < 2:
        raise ValueError(
            f"{train_root} has {len(class_names)} class folder(s); a dataset needs at least 2 "
            f"(layout: train/<class>/*.jpg|png, optional val/<class>/)"
        )
    if val_root is not None:
        extra = sorted(set(p.name for p in val_root.iterdir() if p.is_dir() and not p.name.startswith("."))
                       - set(class_names))
        if extra:
            raise ValueError(f"{val_root} has classes that train/ lacks: {', '.join(extra)}")
    train_images, train_labels, skipped = _decode_split(train_root, class_names, decode_size, every_class=True,
                                                        decoded_cache=decoded_cache)
    if len(train_images) == 0:
        raise ValueError(f"no readable images under {train_root}" + (f" ({len(skipped)} unreadable)" if skipped else ""))
    if val_root is not None:
        val_images, val_labels, val_skipped = _decode_split(val_root, class_names, decode_size,
                                                            decoded_cache=decoded_cache)
        skipped += val_skipped
        if len(val_images) == 0:
            raise ValueError(f"no readable images under {val_root}")
    else:
        (train_images, train_labels), (val_images, val_labels) = split_validation(
            train_images, train_labels, val_fraction, seed
        )
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable image(s) skipped in {path}; first: {skipped[0]}", stacklevel=2)
    return ImageData(train_images, train_labels, val_images, val_labels, tuple(class_names),
                     source=str(path), skipped=tuple(skipped))


# ------------------------------------------------------------------------------ generated
def generate_data(*, num_classes: int = 10, train_size: int = 640, val_size: int = 320, size: int = 16,
                  seed: int = 0) -> ImageData:
    """A tiny learnable dataset: each class has its own colour and stripe orientation/frequency,
    drawn with random phase, brightness and pixel noise (so it is not solved by memorising)."""
    gen = torch.Generator().manual_seed(seed)
    n = train_size + val_size
    labels = torch.arange(n) % num_classes
    labels = labels[torch.randperm(n, generator=gen)]
    hue = torch.arange(num_classes, dtype=torch.float32) / num_classes * 6.283185
    palette = torch.stack([torch.cos(hue), torch.cos(hue - 2.094395), torch.cos(hue + 2.094395)], 1) * 0.35 + 0.5
    angle = (torch.arange(num_classes) % 4).float() * 0.785398  # 0, 45, 90, 135 degrees
    freq = 1.0 + (torch.arange(num_classes) // 4).float()
    coords = torch.linspace(0, 6.283185, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    a, f = angle[labels][:, None, None], freq[labels][:, None, None]
    phase = torch.rand(n, 1, 1, generator=gen) * 6.283185
    stripes = torch.sin(f * (xx * torch.cos(a) + yy * torch.sin(a)) + phase)  # (n, size, size)
    brightness = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gen)
    img = palette[labels][:, :, None, None] * brightness + 0.25 * stripes[:, None]
    img = img + 0.08 * torch.randn(img.shape, generator=gen)
    img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageData(img[:train_size], labels[:train_size], img[train_size:], labels[train_size:],
                     tuple(f"class{k}" for k in range(num_classes)), source="generated")


# ------------------------------------------------------------------------------ entry point
def load_data(spec: str, *, seed: int = 0, train_size: int | None = None, val_size: int | None = None,
              val_fraction: float = 0.1, decode_size: int = DEFAULT_DECODE_SIZE, download: bool = True,
              decoded_cache: Path | None = None) -> ImageData:
    """The dataset named by ``spec``: "fashion-mnist", "generated", or a class-per-folder path.

    ``train_size``/``val_size`` take seeded random subsets; ``val_fraction`` is the hold-out
    used when a folder dataset has no ``val/``; ``decode_size`` is the side folder images are
    decoded to (resolutions above it are upsampled); ``decoded_cache`` is where a large folder
    dataset's decoded images are kept (see `load_folder`).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data must be 'fashion-mnist', 'generated' or a dataset path, got {spec!r}")
    if spec == "fashion-mnist":
        data = load_fashion_mnist(download=download)
    elif spec == "generated":
        data = generate_data(seed=seed)
    else:
        data = load_folder(Path(spec).expanduser(), seed=seed, val_fraction=val_fraction, decode_size=decode_size,
                           decoded_cache=decoded_cache)
    if train_size is not None or val_size is not None:
        data = data.subset(train_size, val_size, seed=seed)
    return data
