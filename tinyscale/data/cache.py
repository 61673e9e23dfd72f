"""The decoded-dataset cache: a class folder's images decoded once, kept on disk, mapped by every reader.

One cache entry ("slot") holds one split folder (``train/``, ``val/`` or the dataset root) at one
decode size, in file order, so one entry serves every split seed and validation fraction::

    <cache dir>/<folder>-<size>px-<hash of the folder's path and the size>/
        manifest.json   what was decoded: the files (relative path, size, mtime), the skipped
                        ones with their reason, the class names, shape, a sample checksum, time
        images.u8       the decoded pixels, uint8 (count, 3, size, size), C order, no header
        rows-<hash>.u8  (only for a split of a folder without val/) the same rows in split order

Why a raw file and not ``.npy``: how many rows there are is known only after decoding (a file
may turn out unreadable), and a raw file is compacted in place and truncated; the manifest
carries the shape and dtype that a ``.npy`` header would, and the file's length is checked
against them. Readers map it with ``numpy.memmap(mode="c")``: the pages are the page cache's,
shared by every process on the machine that maps the file, and copy-on-write (a stray write
changes that process's page, never the file, and torch wraps the map without a read-only
warning).

Validity: an entry is used only when its manifest matches the folder's fingerprint (every
image file's relative path, class, size and mtime, the class names, the decode size and
`CACHE_FORMAT`: bump it when decoding changes), the array file has exactly the declared
length, and a checksum of up to `SAMPLE_ROWS` rows spread over the array matches. Anything
else is said in one line on stderr and the entry is rebuilt; it is never trusted silently.

Writing: a build decodes into ``.<slot>.tmp-<pid>-<random>`` in the same directory, fsyncs it and
renames it into place, so a killed build leaves only a temporary folder that no reader opens
(the next build removes it). Builds of one slot are serialised by ``flock`` on ``<slot>.lock``:
the second process waits, then finds the first one's entry valid and maps it. Without flock
(not POSIX) builders race, but only ever rename complete entries into place: the last one stays,
and a reader that mapped an earlier one keeps its pages.

Rows in another order (`ordered_rows`): a folder without ``val/`` is split by seed, and both
splits are to be maps too, not a private copy per worker. The entry then also holds
``rows-<hash>.u8``, its rows in (train, val) order for that split, written once the same way
(temporary file, fsync, rename, under the entry's lock) and checked the same way on every read.

Location: `cache_root()`: ``$TINYSCALE_DATA_CACHE`` if set (``off`` turns the cache off), else
``decoded/`` in `cache_dir()` (``$TINYSCALE_CACHE``, ``$XDG_CACHE_HOME/tinyscale`` or
``~/.cache/tinyscale``; Fashion-MNIST downloads are kept there too).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyscale.data.decode_pool import decode_into, default_processes
from tinyscale.limits import MAX_JSON_BYTES
from tinyscale.storage import read_bounded

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
IMAGES = "images.u8"
KIND = "tinyscale.decoded"
SAMPLE_ROWS = 64
# Smaller split folders are decoded in RAM as before: about a second to decode (~1,300 images at
# 64 px, ~110 at 224 px), a small copy per worker, and no cache entry for every test fixture.
MIN_CACHED_BYTES = 16 << 20


@dataclass(frozen=True)
class DecodedFiles:
    """The decoded images of a list of files, in file order.

    ``images``: uint8 (len(used), 3, size, size), a copy-on-write map of the cache file (an
    empty array when no file could be decoded); ``used``: int64 index into the file list of each row; ``skipped``: (index,
    reason) of each file that could not be decoded; ``path``: the cache entry (None in RAM)."""

    images: np.ndarray
    used: np.ndarray
    skipped: tuple[tuple[int, str], ...]
    path: Path | None = None
    decode_seconds: float = 0.0
    key: str = ""  # the fingerprint the entry was built for


def cache_dir() -> Path:
    """tinyscale's cache directory (downloads, decoded datasets): $TINYSCALE_CACHE, else
    $XDG_CACHE_HOME/tinyscale, else ~/.cache/tinyscale."""
    if os.environ.get("TINYSCALE_CACHE"):
        return Path(os.environ["TINYSCALE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tinyscale"


def cache_root() -> Path | None:
    """Where decoded datasets are kept; None when ``$TINYSCALE_DATA_CACHE`` is ``off``."""
    chosen = os.environ.get("TINYSCALE_DATA_CACHE")
    if chosen:
        return None if chosen.lower() == "off" else Path(chosen).expanduser()
    return cache_dir() / "decoded"


def slot_path(root: Path, size: int, directory: Path) -> Path:
    """The cache entry of split folder ``root`` decoded at ``size`` px."""
    resolved = str(Path(root).resolve())
    digest = hashlib.sha256(f"{resolved}\n{size}".encode()).hexdigest()[:16]
    return directory / f"{Path(resolved).name or 'root'}-{size}px-{digest}"


def file_records(root: Path, files: Sequence[Path]) -> list[list]:
    """[relative path, size, mtime_ns] of each file: what the fingerprint covers."""
    records = []
    for path in files:
        st = path.stat()
        records.append([path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return records


def fingerprint(records: list[list], labels: Sequence[int], class_names: Sequence[str], size: int) -> str:
    text = json.dumps([CACHE_FORMAT, size, list(class_names), records, list(labels)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def sample_rows(count: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(count, SAMPLE_ROWS)).astype(int).tolist())) if count else []


def sample_checksum(images: np.ndarray, rows: list[int]) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(np.ascontiguousarray(images[row]).data)
    return h.hexdigest()


def describe_change(old: list[list], new: list[list]) -> str:
    """'2 files added, 1 modified' between two fingerprints' file records."""
    before, after = {r[0]: r[1:] for r in old}, {r[0]: r[1:] for r in new}
    counts = {"added": len(after.keys() - before.keys()), "removed": len(before.keys() - after.keys()),
              "modified": sum(before[k] != after[k] for k in before.keys() & after.keys())}
    said = [f"{n} file{'s' * (n != 1)} {what}" for what, n in counts.items() if n]
    return ", ".join(said) or "the class list or the decode settings changed"


def read_entry(slot: Path, root: Path, expected: str, records: list[list],
               size: int) -> tuple[DecodedFiles | None, str | None]:
    """The entry at ``slot`` when it is valid for ``expected`` (a fingerprint), else (None, why);
    (None, None) when there is no entry yet. Skip reasons name files as ``root`` spells them."""
    manifest_path = slot / MANIFEST
    if not manifest_path.exists():
        return None, None
    try:
        manifest = json.loads(read_bounded(manifest_path, MAX_JSON_BYTES, "cache manifest"))
        if manifest.get("kind") != KIND or manifest.get("format") != CACHE_FORMAT:
            return None, f"has format {manifest.get('format')!r}, this version writes {CACHE_FORMAT}"
        if manifest["fingerprint"] != expected:
            return None, f"is stale ({describe_change(manifest['files'], records)})"
        shape = tuple(manifest["shape"])
        # The reasons name each file as the build spelled its folder (the slot is the resolved
        # folder's): reword them as this caller spells it, as an in-RAM decode would.
        built_as = str(manifest["root"])
        skipped = tuple((int(i), str(why).replace(built_as, str(root))) for i, why in manifest["skipped"])
        rows, digest = [int(row) for row in manifest["sample_rows"]], str(manifest["sample_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"has an unreadable manifest ({type(exc).__name__}: {exc})"
    if manifest.get("dtype") != "uint8" or len(shape) != 4 or shape[1:] != (3, size, size) \
            or shape[0] != len(records) - len(skipped):
        return None, f"declares shape {list(shape)} {manifest.get('dtype')}, expected ({len(records) - len(skipped)}, " \
                     f"3, {size}, {size}) uint8"
    images_path = slot / IMAGES
    expected_bytes = int(np.prod(shape))
    actual = images_path.stat().st_size if images_path.exists() else None
    if actual != expected_bytes:
        return None, f"has {IMAGES} of {actual} bytes, the manifest declares {expected_bytes} (truncated?)"
    images = np.memmap(images_path, dtype=np.uint8, mode="c", shape=shape) if shape[0] else np.empty(shape, np.uint8)
    if any(not 0 <= row < shape[0] for row in rows) or sample_checksum(images, rows) != digest:
        return None, "fails its sample checksum (the decoded images were changed)"
    skipped_rows = {i for i, _ in skipped}
    used = np.array([i for i in range(len(records)) if i not in skipped_rows], dtype=np.int64)
    return DecodedFiles(images, used, skipped, slot, float(manifest.get("decode_seconds", 0.0)), expected), None


def say(message: str) -> None:
    print(f"tinyscale: {message}", file=sys.stderr, flush=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_entry(slot: Path, root: Path, files: Sequence[Path], records: list[list], class_names: Sequence[str], key: str,
                size: int, decode: Callable, *, processes: int, progress: bool) -> None:
    """Decode ``files`` into a temporary folder beside ``slot``, then rename it into place."""
    tmp = slot.parent / f".{slot.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        images_path = tmp / IMAGES
        row_bytes = 3 * size * size
        with open(images_path, "wb") as fh:
            if len(files) and hasattr(os, "posix_fallocate"):
                # Reserved now: a full disk is an OSError here, not a SIGBUS when a worker
                # writes into a sparse mapped page.
                os.posix_fallocate(fh.fileno(), 0, len(files) * row_bytes)
            else:
                fh.truncate(len(files) * row_bytes)
        t0 = time.perf_counter()
        skipped = decode_into(decode, files, images_path, size, processes=processes, progress=progress)
        count = len(files) - len(skipped)
        if skipped and count:
            # Close the gaps the skipped files left, in place (a row only ever moves forward).
            data = np.memmap(images_path, dtype=np.uint8, mode="r+", shape=(len(files), row_bytes))
            gone = {row for row, _ in skipped}
            for new, old in enumerate(i for i in range(len(files)) if i not in gone):
                if new != old:
                    data[new] = data[old]
            data.flush()
            del data
        os.truncate(images_path, count * row_bytes)
        seconds = time.perf_counter() - t0
        shape = [count, 3, size, size]
        images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=tuple(shape)) if count else np.empty(shape, np.uint8)
        rows = sample_rows(count)
        manifest = {
            "kind": KIND, "format": CACHE_FORMAT, "root": str(root), "fingerprint": key, "decode_size": size,
            "class_names": list(class_names), "shape": shape, "dtype": "uint8",
            "sample_rows": rows, "sample_sha256": sample_checksum(images, rows),
            "decode_seconds": round(seconds, 3), "processes": processes,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": records, "skipped": [[row, why] for row, why in skipped],
        }
        del images
        _fsync(images_path)
        (tmp / MANIFEST).write_text(json.dumps(manifest))
        _fsync(tmp / MANIFEST)
        install(tmp, slot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was renamed into place


def install(tmp: Path, slot: Path) -> None:
    """Rename the complete entry ``tmp`` to ``slot``, moving a stale entry out of the way first."""
    if slot.exists():
        old = slot.parent / f".{slot.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.rename(slot, old)
        except FileNotFoundError:  # another builder moved it first
            pass
        else:
            shutil.rmtree(old, ignore_errors=True)  # readers that mapped it keep their pages
    try:
        os.rename(tmp, slot)
    except OSError:  # another builder's entry got there first (no flock here): keep it
        pass


class SlotLock:
    """``flock`` on ``<slot>.lock`` (exclusive, blocking); a no-op where flock does not exist."""

    def __init__(self, slot: Path) -> None:
        self.path = slot.parent / f"{slot.name}.lock"
        self.fh = None

    def __enter__(self) -> bool:
        try:
            import fcntl
        except ImportError:
            return False
        self.fh = open(self.path, "a+")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return True

    def __exit__(self, *exc) -> None:
        if self.fh is not None:
            self.fh.close()  # closing releases the lock


def remove_leftovers(slot: Path) -> None:
    """Temporary folders of killed builds of ``slot`` (call only while holding its lock)."""
    for leftover in slot.parent.glob(f".{slot.name}.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def decode_cached(root: Path, files: Sequence[Path], labels: Sequence[int], class_names: Sequence[str], size: int,
                  decode: Callable, *, directory: Path, processes: int | None = None, progress: bool = True,
                  min_bytes: int | None = None) -> DecodedFiles | None:
    """The decoded ``files`` (under split folder ``root``) from the cache in ``directory``, built
    first when missing, stale or corrupt. None when the set is under ``min_bytes`` decoded, or
    the cache directory cannot be written (said on stderr): the caller decodes in RAM.
    ``min_bytes`` None is `MIN_CACHED_BYTES`."""
    if len(files) * 3 * size * size < (MIN_CACHED_BYTES if min_bytes is None else min_bytes):
        return None
    records = file_records(root, files)
    key = fingerprint(records, labels, class_names, size)
    slot = slot_path(root, size, directory)
    entry, why = read_entry(slot, root, key, records, size)
    if entry is not None:
        return entry
    processes = default_processes() if processes is None else processes
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with SlotLock(slot) as locked:
            entry, why_now = read_entry(slot, root, key, records, size)  # another process may have built it meanwhile
            if entry is not None:
                return entry
            why = why_now or why
            if locked:
                remove_leftovers(slot)
            say(f"decoded cache {slot} {why}; rebuilding" if why else
                f"decoding {len(files)} images of {root} at {size} px into {slot} (once, "
                f"{f'{processes} process(es)' if processes else 'threads'})")
            build_entry(slot, root, files, records, class_names, key, size, decode, processes=processes, progress=progress)
    except OSError as exc:
        say(f"cannot write the decoded cache in {directory} ({exc.strerror or exc}); decoding in memory")
        return None
    entry, why = read_entry(slot, root, key, records, size)
    if entry is None:
        raise RuntimeError(f"the decoded cache {slot} just written is not valid: {why}")
    return entry


# ------------------------------------------------------------------------------ rows in another order
ROWS_PREFIX = "rows-"
_ROWS_CHUNK_BYTES = 64 << 20  # copied per write while a row file is built (bounds the private memory)


def read_rows(path: Path, entry: DecodedFiles, order: np.ndarray) -> tuple[np.ndarray | None, str | None]:
    """The row file at ``path`` when it holds ``entry``'s rows ``order`` (its length, and a
    sample of rows equal to the entry's), else (None, why); (None, None) when there is none."""
    shape = (len(order),) + entry.images.shape[1:]
    actual = path.stat().st_size if path.exists() else None
    if actual is None:
        return None, None
    if actual != int(np.prod(shape)):
        return None, f"has {actual} bytes, expected {int(np.prod(shape))} (truncated?)"
    rows = np.memmap(path, dtype=np.uint8, mode="c", shape=shape)
    sample = sample_rows(len(order))
    if sample_checksum(rows, sample) != sample_checksum(entry.images, order[sample].tolist()):
        return None, "fails its sample checksum (its images were changed)"
    return rows, None


def ordered_rows(entry: DecodedFiles, order: Sequence[int]) -> np.ndarray | None:
    """``entry.images[order]`` without a private copy: a copy-on-write map of a file in the entry
    that holds those rows in that order, built once (under the entry's lock) and then mapped by
    every process, as the entry itself is. What makes the held-out split of a folder without
    ``val/`` one shared copy rather than one per worker: its rows in (train, val) order, each
    split a slice of the map. The file is named by the entry's fingerprint and the order, is
    checked like an entry (length, sample rows) and goes with the entry when that is rebuilt.
    None when it cannot be written (said on stderr): the caller copies the rows in memory."""
    order = np.asarray(order, dtype=np.int64)
    if entry.path is None or not len(order) or not len(entry.images):
        return None
    if order.min() < 0 or order.max() >= len(entry.images):
        raise ValueError(f"row order outside the {len(entry.images)} rows of {entry.path}")
    digest = hashlib.sha256(entry.key.encode() + order.tobytes()).hexdigest()[:16]
    path = entry.path / f"{ROWS_PREFIX}{digest}.u8"
    found, why = read_rows(path, entry, order)
    if found is not None:
        return found
    try:
        with SlotLock(entry.path) as locked:
            found, why_now = read_rows(path, entry, order)  # another process may have written it meanwhile
            if found is not None:
                return found
            if locked:
                for leftover in entry.path.glob(f".{ROWS_PREFIX}*.tmp-*"):  # killed writes'
                    leftover.unlink(missing_ok=True)
            if why_now or why:
                say(f"{path} {why_now or why}; writing it again")
            write_rows(path, entry.images, order)
    except OSError as exc:
        say(f"cannot write {path.name} in {entry.path} ({exc.strerror or exc}); the split is copied in memory")
        return None
    found, why = read_rows(path, entry, order)
    if found is None:
        raise RuntimeError(f"the row file {path} just written is not valid: {why}")
    return found


def write_rows(path: Path, images: np.ndarray, order: np.ndarray) -> None:
    """``images[order]`` into a new file at ``path``, chunk by chunk; a temporary file renamed into place."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    chunk = max(1, _ROWS_CHUNK_BYTES // max(1, images[0].nbytes))
    try:
        with open(tmp, "xb") as fh:
            for start in range(0, len(order), chunk):
                fh.write(np.ascontiguousarray(images[order[start:start + chunk]]).data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already when it was renamed into place
