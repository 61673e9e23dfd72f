"""The data stage: images and labels as uint8 tensors, decoded once.

- `datasets`: `ImageData` and its sources (Fashion-MNIST, class-per-folder datasets, generated
  data), `load_data`.
- `cache`: the decoded-dataset cache on disk that large folder datasets are mapped from
  (`decode_cached`, `cache_root`).
- `decode_pool`: decoding many files into one array in parallel (processes or threads).
"""

from tinyscale.data.cache import CACHE_FORMAT, MIN_CACHED_BYTES, DecodedFiles, cache_dir, cache_root, decode_cached
from tinyscale.data.datasets import (DEFAULT_DECODE_SIZE, FASHION_MNIST_CLASSES, IMAGE_SUFFIXES, ImageData,
                                     generate_data, load_data, load_fashion_mnist, load_folder, resize_images,
                                     split_validation)

__all__ = [
    "CACHE_FORMAT", "DEFAULT_DECODE_SIZE", "FASHION_MNIST_CLASSES", "IMAGE_SUFFIXES", "MIN_CACHED_BYTES",
    "DecodedFiles", "ImageData", "cache_dir", "cache_root", "decode_cached", "generate_data", "load_data",
    "load_fashion_mnist", "load_folder", "resize_images", "split_validation",
]
