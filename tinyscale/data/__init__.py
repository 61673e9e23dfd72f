"""The data stage: images and labels as uint8 tensors, decoded once.

- `datasets`: `ImageData` and its sources (Fashion-MNIST, Imagenette, class-per-folder datasets,
  generated data), `load_data`.
- `published`: where Fashion-MNIST and Imagenette are found, or downloaded once and checksummed.
- `cache`: the decoded-dataset cache on disk that large folder datasets are mapped from
  (`decode_cached`, `cache_root`), and the held-out split of one as a map too (`ordered_rows`).
- `decode_pool`: decoding many files into one array in parallel (processes or threads).
"""

from tinyscale.data.cache import (CACHE_FORMAT, MIN_CACHED_BYTES, DecodedFiles, cache_dir, cache_root, decode_cached,
                                  ordered_rows)
from tinyscale.data.datasets import (DEFAULT_DECODE_SIZE, IMAGE_SUFFIXES, NAMED_DATASETS, ImageData, generate_data,
                                     load_data, load_fashion_mnist, load_folder, load_imagenette,
                                     resize_images, split_indices, split_validation)
from tinyscale.data.published import (FASHION_MNIST_CLASSES, IMAGENETTE_CLASSES, download_verified, fashion_mnist_dir,
                                      imagenette_classes, imagenette_dir)

__all__ = [
    "CACHE_FORMAT", "DEFAULT_DECODE_SIZE", "FASHION_MNIST_CLASSES", "IMAGENETTE_CLASSES", "IMAGE_SUFFIXES",
    "MIN_CACHED_BYTES", "NAMED_DATASETS", "DecodedFiles", "ImageData", "cache_dir", "cache_root", "decode_cached",
    "download_verified", "fashion_mnist_dir", "generate_data", "imagenette_classes", "imagenette_dir",
    "load_data", "load_fashion_mnist", "load_folder", "load_imagenette", "ordered_rows", "resize_images",
    "split_indices", "split_validation",
]
