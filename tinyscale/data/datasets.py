"""Image data for the study: Fashion-MNIST, Imagenette, class-per-folder datasets, and a generated toy set.

Every source is decoded once into uint8 tensors (N, C, H, W) with C = 1 (grayscale) or 3;
`ImageData.at(resolution)` resizes once per resolution and caches the result, so training
only gathers, augments and normalises tensors — it never decodes in the loop. Grayscale data
is handed out as a 3-channel *view* (no copy), because the networks take RGB.

Where the published datasets (Fashion-MNIST, Imagenette) are found, or downloaded and
checksummed, is `tinyscale.data.published`; Imagenette is then read as any class folder is.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from tinyscale.data.cache import DecodedFiles, decode_cached, ordered_rows
from tinyscale.data.published import (FASHION_MNIST_CLASSES, fashion_mnist_dir, imagenette_classes, imagenette_dir,
                                      read_idx)
from tinyscale.limits import MAX_IMAGE_PIXELS

NAMED_DATASETS = ("fashion-mnist", "imagenette", "generated")  # data specs that are not paths
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


def split_indices(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed, seeded hold-out of ``n`` images: (train rows, val rows), each ascending."""
    if not 0 < fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n_val = max(1, round(n * fraction))
    if n - n_val < 1:
        raise ValueError(f"{n} image(s) are too few to hold out a validation split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def split_validation(images: torch.Tensor, labels: torch.Tensor, fraction: float, seed: int,
                     entry: DecodedFiles | None = None):
    """A fixed, seeded hold-out: ((train_images, train_labels), (val_images, val_labels)).

    Copied rows, unless ``images`` are a decoded cache ``entry``'s map (all its rows): then the
    two splits are slices of one shared map of the entry's rows in (train, val) order
    (`tinyscale.data.cache.ordered_rows`), the same images without a copy in each process."""
    train_idx, val_idx = split_indices(len(images), fraction, seed)
    ordered = None if entry is None else ordered_rows(entry, torch.cat([train_idx, val_idx]).numpy())
    if ordered is None:
        return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])
    both = torch.from_numpy(ordered)  # a copy-on-write map: no copy of the pixels
    return (both[:len(train_idx)], labels[train_idx]), (both[len(train_idx):], labels[val_idx])


# ------------------------------------------------------------------------------ Fashion-MNIST
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


def load_imagenette(*, download: bool = True, decode_size: int = DEFAULT_DECODE_SIZE,
                    decoded_cache: Path | None = None, directory: Path | None = None) -> ImageData:
    """Imagenette (``directory``, else found or downloaded by `imagenette_dir`) with its own
    ``val/`` as the held-out split and the same labels whether its folders are WordNet ids or
    class names."""
    directory = imagenette_dir(download) if directory is None else directory
    return load_folder(directory, decode_size=decode_size, decoded_cache=decoded_cache,
                       classes=imagenette_classes(directory), name=f"imagenette ({directory})")


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
    (`tinyscale.data.cache`): the same images, mapped from disk instead of held in RAM.
    (images, labels, skip reasons, the cache entry or None)."""
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
    return images, torch.tensor([labels[i] for i in good], dtype=torch.long), skipped, cached


def load_folder(path: Path, *, seed: int = 0, val_fraction: float = 0.1, decode_size: int = DEFAULT_DECODE_SIZE,
                decoded_cache: Path | None = None, classes: Sequence[tuple[str, str]] | None = None,
                name: str | None = None) -> ImageData:
    """A class-per-folder dataset: ``path/train/<class>/*`` (or ``path/<class>/*``), optional ``path/val/<class>/*``.

    ``decoded_cache``: a directory of decoded datasets (`tinyscale.data.cache`) to read large
    sets from (and build there on first use); None decodes in RAM. ``classes``: (folder, class
    name) pairs in label order (a published dataset's own order); None takes every class folder
    in name order. ``name``: how messages name the dataset (its path by default)."""
    if not path.exists():
        raise ValueError(f"no dataset at {path}: the path does not exist")
    if not path.is_dir():
        raise ValueError(f"{path} is not a directory; expected train/<class>/ image folders")
    train_root = path / "train" if (path / "train").is_dir() else path
    val_root = path / "val" if (path / "val").is_dir() else None
    if classes is None:
        folders = sorted(p.name for p in train_root.iterdir()
                         if p.is_dir() and p.name not in ("train", "val") and not p.name.startswith("."))
        class_names = folders
    else:
        folders, class_names = [folder for folder, _ in classes], [label for _, label in classes]
    if len(folders) < 2:
        raise ValueError(
            f"{train_root} has {len(folders)} class folder(s); a dataset needs at least 2 "
            f"(layout: train/<class>/*.jpg|png, optional val/<class>/)"
        )
    if val_root is not None:
        extra = sorted(set(p.name for p in val_root.iterdir() if p.is_dir() and not p.name.startswith("."))
                       - set(folders))
        if extra:
            raise ValueError(f"{val_root} has classes that train/ lacks: {', '.join(extra)}")
    train_images, train_labels, skipped, entry = _decode_split(train_root, folders, decode_size, every_class=True,
                                                               decoded_cache=decoded_cache)
    if len(train_images) == 0:
        raise ValueError(f"no readable images under {train_root}" + (f" ({len(skipped)} unreadable)" if skipped else ""))
    if val_root is not None:
        val_images, val_labels, val_skipped, _ = _decode_split(val_root, folders, decode_size,
                                                               decoded_cache=decoded_cache)
        skipped += val_skipped
        if len(val_images) == 0:
            raise ValueError(f"no readable images under {val_root}")
    else:
        (train_images, train_labels), (val_images, val_labels) = split_validation(
            train_images, train_labels, val_fraction, seed, entry
        )
    if skipped:
        warnings.warn(f"{len(skipped)} unreadable image(s) skipped in {path}; first: {skipped[0]}", stacklevel=2)
    return ImageData(train_images, train_labels, val_images, val_labels, tuple(class_names),
                     source=name or str(path), skipped=tuple(skipped))


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
    """The dataset named by ``spec``: "fashion-mnist", "imagenette", "generated", or a
    class-per-folder path.

    ``train_size``/``val_size`` take seeded random subsets; ``val_fraction`` is the hold-out
    used when a folder dataset has no ``val/``; ``decode_size`` is the side folder images are
    decoded to (resolutions above it are upsampled); ``decoded_cache`` is where a large folder
    dataset's decoded images are kept (see `load_folder`); ``download``: whether a published
    dataset found nowhere may be downloaded.
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"data must be one of {', '.join(NAMED_DATASETS)} or a dataset path, got {spec!r}")
    if spec == "fashion-mnist":
        data = load_fashion_mnist(download=download)
    elif spec == "imagenette":
        data = load_imagenette(download=download, decode_size=decode_size, decoded_cache=decoded_cache)
    elif spec == "generated":
        data = generate_data(seed=seed)
    else:
        data = load_folder(Path(spec).expanduser(), seed=seed, val_fraction=val_fraction, decode_size=decode_size,
                           decoded_cache=decoded_cache)
    if train_size is not None or val_size is not None:
        data = data.subset(train_size, val_size, seed=seed)
    return data
