"""Decoding many image files into the rows of one uint8 array, in parallel.

The array is a file on disk (the decoded cache is being built): each worker opens it with
``numpy.memmap(mode="r+")`` and writes its own rows, so decoded pixels never travel back
through a pipe. Workers are threads of this process by default: PIL releases the GIL while it
decodes, converts and resizes, and on a 2-core machine threads built the cache of 400 224-px
JPEGs in 0.6 s where 1 or 2 spawned processes took 4.7 and 6.8 s, mostly each process's start
(importing torch for the decode function; benchmarks/bench_data.py). Spawned processes (spawn,
not fork: the parent may already run torch's OpenMP threads) are one environment variable away,
``TINYSCALE_DECODE_PROCESSES=N``, for machines where the GIL-held part of a decode does limit
threads. Both write the same bytes: the decode function is the one the in-RAM loader uses.

``decode(path, size)`` returns a uint8 (3, size, size) array-like (a torch tensor) or a string,
the reason the file was skipped.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path

CHUNK_FILES = 64  # files per task: a progress tick, and few enough pickled paths per call


def default_processes() -> int:
    """Decode processes: ``$TINYSCALE_DECODE_PROCESSES`` if set, else 0 (threads of this process)."""
    chosen = os.environ.get("TINYSCALE_DECODE_PROCESSES", "0")
    if not chosen.isdigit():
        raise ValueError(f"TINYSCALE_DECODE_PROCESSES must be a whole number, got {chosen!r}")
    return int(chosen)


def decode_chunk(decode: Callable, paths: Sequence[str], first_row: int, array_path: str, shape: tuple,
                 size: int) -> list[tuple[int, str]]:
    """Decode ``paths`` into rows ``first_row...`` of the array file; (row, reason) of each skip."""
    import numpy as np
    from PIL import Image

    out = np.memmap(array_path, dtype=np.uint8, mode="r+", shape=shape)
    skipped = []
    with warnings.catch_warnings():
        # A spawned process does not inherit the loader's filters: PIL warns about large
        # images below the limit at which the decode function skips them itself.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for row, path in enumerate(paths, first_row):
            item = decode(Path(path), size)
            if isinstance(item, str):
                skipped.append((row, item))
            else:
                out[row] = np.asarray(item)
    out.flush()
    del out
    return skipped


def decode_into(decode: Callable, files: Sequence[Path], array_path: Path, size: int, *, processes: int = 0,
                progress: bool = True) -> list[tuple[int, str]]:
    """Decode ``files`` into the rows of the uint8 (len(files), 3, size, size) file at ``array_path``
    (already that size); returns the (row, reason) of each file that could not be decoded.

    ``processes`` >= 1 spawns that many processes; 0 decodes in threads of this process (PIL
    releases the GIL while it decodes and resizes)."""
    from tqdm.auto import tqdm

    shape = (len(files), 3, size, size)
    pool: Executor
    if processes >= 1:
        import multiprocessing

        pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))
    else:
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    skipped: list[tuple[int, str]] = []
    bar = tqdm(total=len(files), desc="decoding", unit="img", dynamic_ncols=True,
               disable=None if progress else True)  # None: shown on a terminal only
    with pool, bar:
        futures = {pool.submit(decode_chunk, decode, [str(p) for p in files[start:start + CHUNK_FILES]], start,
                               str(array_path), shape, size): min(CHUNK_FILES, len(files) - start)
                   for start in range(0, len(files), CHUNK_FILES)}
        try:
            for future in as_completed(futures):
                skipped += future.result()
                bar.update(futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return sorted(skipped)
