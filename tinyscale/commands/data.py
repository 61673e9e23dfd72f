"""`tinyscale data DIR` (or `tinyscale data imagenette`): what a class-per-folder dataset holds,
and its decoded cache."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="classes, splits, skipped files and decoded cache of a dataset folder")
    p.add_argument("directory", help="class-per-folder dataset: DIR/train/<class>/* (or DIR/<class>/*), "
                                     "optional DIR/val/<class>/*; or imagenette ($TINYSCALE_IMAGENETTE, the "
                                     "cache, or downloaded once)")
    p.add_argument("--decode-size", type=int, default=None, metavar="PX",
                   help="side the images are decoded to; a study decodes at its largest input, "
                        "int(base_resolution x max(1, r_max)) (default: the loader's 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split when there is no val/ (default 0)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="share held out when there is no val/ (default 0.1)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="decoded cache directory (default: $TINYSCALE_DATA_CACHE, else decoded/ in the "
                        "tinyscale cache dir)")
    p.add_argument("--no-cache", action="store_true", help="decode in memory only; read and write no cache")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def split_roots(path) -> list:
    """The split folders `load_folder` reads: train/ (or DIR itself), and val/ if present."""
    roots = [path / "train" if (path / "train").is_dir() else path]
    return roots + ([path / "val"] if (path / "val").is_dir() else [])


def entry_summary(slot) -> dict | None:
    """What the cache entry at ``slot`` holds (None when there is none)."""
    from tinyscale.data.cache import IMAGES, MANIFEST, ROWS_PREFIX
    from tinyscale.limits import MAX_JSON_BYTES
    from tinyscale.storage import read_bounded

    try:
        manifest = json.loads(read_bounded(slot / MANIFEST, MAX_JSON_BYTES, "cache manifest"))
    except (OSError, ValueError):
        return None
    size = sum(f.stat().st_size for f in slot.iterdir() if f.is_file())
    # Each held-out split of a folder without val/ (one per seed and fraction) keeps its rows in split order.
    splits = [f.stat().st_size for f in slot.glob(f"{ROWS_PREFIX}*.u8")]
    return {"path": str(slot), "bytes": size, "images": manifest["shape"][0], "image_bytes": (slot / IMAGES).stat().st_size,
            "split_files": len(splits), "split_bytes": sum(splits),
            "decode_seconds": manifest.get("decode_seconds"), "processes": manifest.get("processes"),
            "built": manifest.get("built")}


def describe(args: argparse.Namespace) -> dict:
    import os
    import time
    import warnings
    from pathlib import Path

    from tinyscale.data.cache import MIN_CACHED_BYTES, cache_root, slot_path
    from tinyscale.data.datasets import DEFAULT_DECODE_SIZE, NAMED_DATASETS, load_folder, load_imagenette
    from tinyscale.data.published import imagenette_dir

    if args.directory in NAMED_DATASETS and args.directory != "imagenette":
        raise ValueError(f"{args.directory} is not a class-per-folder dataset; 'tinyscale data' describes a folder "
                         "or imagenette")
    size = args.decode_size or DEFAULT_DECODE_SIZE
    if size < 1:
        raise ValueError(f"--decode-size must be at least 1, got {size}")
    named = args.directory == "imagenette"
    path = imagenette_dir() if named else Path(args.directory).expanduser()
    directory = None if args.no_cache else (Path(args.cache_dir).expanduser() if args.cache_dir else cache_root())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the skipped files are listed below, each with its reason
        data = load_imagenette(directory=path, decode_size=size, decoded_cache=directory) if named else \
            load_folder(path, seed=args.seed, val_fraction=args.val_fraction, decode_size=size, decoded_cache=directory)
    seconds = time.perf_counter() - t0
    roots = split_roots(path)
    used = [len(data.train_labels) + len(data.val_labels)] if len(roots) == 1 else \
        [len(data.train_labels), len(data.val_labels)]
    files = [n + sum(why.startswith(f"{root}{os.sep}") for why in data.skipped) for root, n in zip(roots, used)]
    decoded_bytes = sum(files) * 3 * size * size
    # Each split folder is cached when it is large enough, as `decode_cached` decides.
    entries = [] if directory is None else [entry_summary(slot_path(root, size, directory))
                                            for root, n in zip(roots, files) if n * 3 * size * size >= MIN_CACHED_BYTES]

    def per_class(labels) -> dict:
        counts = labels.bincount(minlength=data.num_classes).tolist()
        return dict(zip(data.class_names, counts))

    return {
        "dataset": data.source, "path": str(path), "decode_size": size, "classes": list(data.class_names),
        "val_source": "val/" if (path / "val").is_dir() else f"{args.val_fraction * 100:g} % held out, seed {args.seed}",
        "train": len(data.train_labels), "val": len(data.val_labels),
        "per_class": {"train": per_class(data.train_labels), "val": per_class(data.val_labels)},
        "skipped": list(data.skipped), "load_seconds": round(seconds, 3),
        "cache": [e for e in entries if e is not None],
        "cache_dir": None if directory is None else str(directory), "decoded_bytes": decoded_bytes,
        "min_cached_bytes": MIN_CACHED_BYTES,
    }


def _size_text(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def format_description(d: dict) -> str:
    width = max(len(c) for c in d["classes"])
    lines = [f"dataset  {d['dataset']}", f"classes  {len(d['classes'])}, decoded at {d['decode_size']} px",
             f"splits   train {d['train']}, val {d['val']} ({d['val_source']})", "",
             f"  {'class':<{width}}  {'train':>7}  {'val':>7}"]
    for name in d["classes"]:
        lines.append(f"  {name:<{width}}  {d['per_class']['train'][name]:>7}  {d['per_class']['val'][name]:>7}")
    lines.append("")
    lines.append(f"skipped  {len(d['skipped'])} file(s)" + (":" if d["skipped"] else ""))
    lines += [f"  {why}" for why in d["skipped"]]
    if d["cache_dir"] is None:
        lines.append("cache    off (decoded in memory)")
    elif not d["cache"]:
        lines.append(f"cache    not used: {_size_text(d['decoded_bytes'])} decoded is under the "
                     f"{_size_text(d['min_cached_bytes'])} worth caching (decoded in memory)")
    for entry in d["cache"]:
        splits = f" (of which {_size_text(entry['split_bytes'])}: {entry['split_files']} held-out split(s) in " \
                 "split order)" if entry["split_files"] else ""
        lines.append(f"cache    {entry['path']}: {entry['images']} images, {_size_text(entry['bytes'])}{splits}, "
                     f"decoded in {entry['decode_seconds']:.1f} s "
                     f"({f'{p} process(es)' if (p := entry['processes']) else 'threads'}) at {entry['built']}")
    lines.append(f"loaded   in {d['load_seconds']:.1f} s (this run)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    d = describe(args)
    print(json.dumps(d) if args.json else format_description(d))
    return 0
