"""An export built in memory and written out: ``recipe.json`` + safetensors weights + a verified
ONNX file, as a directory or a .zip/.tar archive.

The bundle is built first (`build_export` -> `ExportBundle`, name -> bytes), so the UI can serve
it as one download (`archive_bytes`) and the CLI can write it (`write_export`). Nothing is
written until every part is ready: the ONNX graph must reproduce the PyTorch module
(`tinyscale.export.onnx.network_onnx`) or the export fails. Without the ``export`` extras (onnx,
onnxruntime, onnxscript) the ONNX part is left out with a note saying how to get it; the rest is
still exported.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tinyscale.export.onnx import ONNX_TOLERANCE, network_onnx, onnx_available
from tinyscale.space.cost import baseline_macs, cost
from tinyscale.space.recipe import Recipe
from tinyscale.storage import write_bytes_atomically
from tinyscale.study.trial import check_seed

MANIFEST = "recipe.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
FORMATS = ("safetensors", "onnx")
EXPORT_FORMAT = 1
# What the manifest's "kind" says: a name of the file format, not of the module that writes it
# (exports written before the library became packages say the same, and must still load).
EXPORT_KIND = "tinyscale.export"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
# Compressed or archive formats tinyscale does not write: a path ending in one is a mistake,
# not a directory name.
UNSUPPORTED_ARCHIVES = (".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".7z", ".rar",
                        ".gz", ".bz2", ".xz", ".zst", ".lz", ".lzma")


@dataclass(frozen=True)
class ExportBundle:
    """An export held in memory: file name -> bytes, the manifest, and notes for the user."""

    files: dict[str, bytes]
    manifest: dict
    notes: tuple[str, ...] = ()
    onnx_max_abs_diff: float | None = None


@dataclass(frozen=True)
class TrainedWeights:
    """A module trained for the export, and what the training measured."""

    model: object  # torch.nn.Module in eval mode
    steps: int
    accuracy: float | None
    input_mean: tuple[float, ...]
    input_std: tuple[float, ...]
    data: str


def tinyscale_version() -> str:
    try:
        from importlib.metadata import version

        return version("tinyscale")
    except Exception:  # not installed as a distribution (running from a source tree)
        return "unknown"


def parse_formats(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """"safetensors,onnx" -> ("safetensors", "onnx"), validated."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    items = [s for s in items if s]
    bad = [s for s in items if s not in FORMATS]
    if bad or not items:
        raise ValueError(f"formats must be a comma-separated subset of {', '.join(FORMATS)}, got {spec!r}")
    return tuple(dict.fromkeys(items))


def safetensors_bytes(model) -> bytes:
    """The module's state dict as safetensors bytes."""
    from safetensors.torch import save

    # Contiguous copies: a channels-last trained module has permuted strides.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # One metadata key: safetensors writes several in a random order, so the same weights gave
    # different bytes (and checksums) from one export to the next. The manifest names the producer.
    return save(state, metadata={"format": "pt"})


def build_export(
    recipe: Recipe,
    *,
    formats: tuple[str, ...] | str = FORMATS,
    trained: TrainedWeights | None = None,
    provenance: dict | None = None,
    seed: int = 0,
) -> ExportBundle:
    """Everything an export holds, in memory. Random initial weights (seeded) unless ``trained``.

    The manifest (``recipe.json``) holds the recipe (r, w, d, rules, base resolution, classes),
    resolution, MACs, params, the input it expects, where the weights came from, and provenance
    (study directory, fit, target ratio, tinyscale version). ``model.safetensors`` holds the
    state dict (timm EfficientNet key names, see tinyscale.space.model); ``model.onnx`` is one
    self-contained file, input ``images`` (batch, 3, res, res) float32, output ``logits``."""
    import torch

    from tinyscale.space.model import build_model

    formats = parse_formats(formats)
    check_seed(seed)
    if trained is not None:
        model = trained.model
        if getattr(model, "recipe", None) != recipe:
            raise ValueError("the trained module was built for a different recipe")
        weights = {"init": "trained", "steps": trained.steps, "accuracy": trained.accuracy, "data": trained.data}
        normalise = {"mean": list(trained.input_mean), "std": list(trained.input_std)}
    else:
        torch.manual_seed(seed)
        model = build_model(recipe)
        weights = {"init": "random", "seed": seed}
        normalise = None
    model = model.eval()

    c = cost(recipe)
    manifest = {
        "format": EXPORT_FORMAT,
        "kind": EXPORT_KIND,
        "recipe": recipe.to_dict(),
        "r": recipe.r,
        "w": recipe.w,
        "d": recipe.d,
        "rules": recipe.rules,
        "resolution": recipe.resolution,
        "macs": c.macs,
        "params": c.params,
        "ratio": c.macs / baseline_macs(recipe),
        "input": {
            "name": "images",
            "shape": ["batch", 3, recipe.resolution, recipe.resolution],
            "dtype": "float32",
            # Trained weights expect (x/255 - mean) / std per RGB channel, as the trainer fed them.
            "normalise": normalise,
        },
        "weights": weights,
        "files": {},
        "provenance": {
            "tinyscale_version": tinyscale_version(),
            "torch_version": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **(provenance or {}),
        },
    }
    files: dict[str, bytes] = {}
    notes: list[str] = []
    diff = None
    if "safetensors" in formats:
        files[WEIGHTS] = safetensors_bytes(model)
        manifest["files"]["safetensors"] = WEIGHTS
    if "onnx" in formats:
        reason = onnx_available()
        if reason:
            notes.append(reason)
        else:
            files[ONNX], diff = network_onnx(model, recipe.resolution, seed)
            manifest["files"]["onnx"] = ONNX
            manifest["onnx_max_abs_diff"] = diff
            notes.append(f"ONNX verified with onnxruntime: max abs diff {diff:.2g} (tolerance {ONNX_TOLERANCE:g})")
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    return ExportBundle(files=files, manifest=manifest, notes=tuple(notes), onnx_max_abs_diff=diff)


def archive_kind(path: Path) -> str | None:
    """The archive suffix ``path`` ends in (one of `ARCHIVE_SUFFIXES`), or None."""
    name = path.name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def archive_bytes(bundle: ExportBundle, kind: str = ".zip") -> bytes:
    """The bundle as one archive in memory (``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz``)."""
    buf = io.BytesIO()
    if kind == ".zip":
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in bundle.files.items():
                zf.writestr(name, data)
    elif kind in (".tar", ".tar.gz", ".tgz"):
        with tarfile.open(fileobj=buf, mode="w:gz" if kind != ".tar" else "w") as tf:
            for name, data in bundle.files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(time.time())
                tf.addfile(info, io.BytesIO(data))
    else:
        raise ValueError(f"archive kind must be one of {ARCHIVE_SUFFIXES}, got {kind!r}")
    return buf.getvalue()


def check_export_path(out: str | os.PathLike, *, force: bool = False) -> Path:
    """``out`` as a Path, refused (ValueError) before anything is built when it cannot or must
    not be written: empty, an archive suffix tinyscale does not write, an archive name that is a
    directory, or an existing export or archive (unless ``force``)."""
    if not str(os.fspath(out)).strip():
        raise ValueError("the export path is empty: give --out DIR or --out FILE.zip|.tar|.tar.gz|.tgz")
    out = Path(out)
    kind = archive_kind(out)
    if kind is None:
        bad = next((s for s in UNSUPPORTED_ARCHIVES if out.name.lower().endswith(s)), None)
        if bad:
            raise ValueError(f"{out}: {bad} archives are not supported; "
                             f"use a directory or one of {', '.join(ARCHIVE_SUFFIXES)}")
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out} exists and is not a directory")
        held = sorted(n for n in (MANIFEST, WEIGHTS, ONNX) if (out / n).exists())
        if held and not force:
            raise ValueError(f"{out} already holds an export ({', '.join(held)}); "
                             "choose another --out, or pass --force to replace it")
        return out
    if out.is_dir():
        raise ValueError(f"{out} is a directory; an archive path must name a file")
    if out.exists() and not force:
        raise ValueError(f"{out} already exists; choose another --out, or pass --force to overwrite it")
    return out


def write_export(bundle: ExportBundle, out: str | os.PathLike, *, force: bool = False) -> Path:
    """Write the bundle to ``out``: an archive if the name ends in .zip/.tar/.tar.gz/.tgz,
    otherwise a directory (created). An existing archive or export is replaced only with
    ``force`` (see `check_export_path`). A failure (disk full, read-only directory) leaves
    ``out`` as it was: the archive goes through a temporary file, the directory's files are
    staged in a temporary directory beside it and moved in only once all are written."""
    out = check_export_path(out, force=force)
    kind = archive_kind(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind:
        write_bytes_atomically(out, archive_bytes(bundle, kind))
        return out
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:  # a read-only folder, say: name the export asked for, not our staging
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    try:
        for name, data in bundle.files.items():
            write_bytes_atomically(staging / name, data)
        out.mkdir(exist_ok=True)
        # The manifest last: a directory with recipe.json is a complete export.
        for name in sorted(bundle.files, key=lambda n: n == MANIFEST):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def export_recipe(recipe: Recipe, out: str | os.PathLike, **kwargs) -> tuple[Path, ExportBundle]:
    """`build_export` then `write_export`; returns where it went and what was written."""
    bundle = build_export(recipe, **kwargs)
    return write_export(bundle, out), bundle
