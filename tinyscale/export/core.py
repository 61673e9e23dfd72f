"""Export a recipe's network: ``recipe.json`` + safetensors weights + a verified ONNX file, as a
directory or a .zip/.tar archive, and `load_exported` to rebuild the module from it.

The bundle is built in memory first (`build_export` -> `ExportBundle`, name -> bytes), so the
UI can serve it as one download (`archive_bytes`) and the CLI can write it (`write_export`).
Nothing is written until every part is ready: the ONNX graph must reproduce the PyTorch module
on random input (max abs difference <= ``ONNX_TOLERANCE``, checked with onnxruntime) or the
export fails. Without the ``export`` extras (onnx, onnxruntime, onnxscript) the ONNX part is
left out with a note saying how to get it; the rest is still exported.

Files:
    recipe.json         the recipe (r, w, d, rules, base resolution, classes), resolution, MACs,
                        params, the input it expects, where the weights came from, and provenance
                        (study directory, fit, target ratio, tinyscale version)
    model.safetensors   the state dict (timm EfficientNet key names, see tinyscale.space.model)
    model.onnx          one self-contained file (no external data), input ``images``
                        (batch, 3, res, res) float32, output ``logits``
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tinyscale.space.cost import baseline_macs, cost
from tinyscale.space.recipe import RECIPE_FIELDS, Recipe
from tinyscale.storage import write_bytes_atomically
from tinyscale.study.trial import check_seed

MANIFEST = "recipe.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
FORMATS = ("safetensors", "onnx")
ONNX_TOLERANCE = 1e-4
EXPORT_FORMAT = 1
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


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


def onnx_available() -> str | None:
    """None when ONNX export can run here, otherwise the reason it cannot."""
    import importlib.util

    missing = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"ONNX left out: {', '.join(missing)} not installed "
                f"(pip install 'tinyscale[export]' adds the export extras)")
    return None


def train_for_export(recipe: Recipe, config, steps: int, *, seed: int = 0) -> TrainedWeights:
    """Train ``recipe`` for ``steps`` steps on the study's data with the study's trainer settings.

    ``config`` is the study's `tinyscale.study.trial.StudyConfig`; only the step count differs. The
    data is what the study's trials saw (`tinyscale.study.plan.data_spec`: the same subsets of the
    same size, folder images decoded at the same size).
    """
    from tinyscale.study.executors import worker_data
    from tinyscale.study.plan import data_spec
    from tinyscale.train.config import TrainConfig
    from tinyscale.train.trainer import train_recipe

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"train steps must be a positive integer, got {steps!r}")
    # The study's own data spec (subset sizes, seed, decode size), as its workers load it.
    data = worker_data(data_spec(config))
    if data.num_classes != recipe.num_classes:
        raise ValueError(f"the study's data has {data.num_classes} classes, the recipe {recipe.num_classes}")
    kept = {}
    result = train_recipe(recipe, data, TrainConfig.from_study(config).with_(steps=steps), seed,
                          on_trained=lambda m: kept.setdefault("model", m))
    if result.failed or "model" not in kept:
        raise ValueError(f"training for the export failed: {result.failed}")
    mean, std = data.mean_std()
    return TrainedWeights(model=kept["model"], steps=result.steps, accuracy=result.accuracy,
                          input_mean=tuple(mean), input_std=tuple(std), data=config.data)


def _state_bytes(model) -> bytes:
    from safetensors.torch import save

    # Contiguous copies: a channels-last trained module has permuted strides.
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(state, metadata={"format": "pt", "producer": "tinyscale"})


def _onnx_bytes(model, resolution: int, seed: int) -> tuple[bytes, float]:
    """Export with torch's (dynamo) exporter to one file, verify with onnxruntime, return bytes."""
    import numpy as np
    import onnxruntime as ort
    import torch

    gen = torch.Generator().manual_seed(seed)
    example = torch.randn(2, 3, resolution, resolution, generator=gen)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" lines are not ours to show
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            path = Path(tmp) / ONNX
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False,
                input_names=["images"], output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
            extra = [p.name for p in Path(tmp).iterdir() if p.name != ONNX]
            if extra:
                raise RuntimeError(f"the ONNX exporter wrote extra files {extra}; expected one self-contained file")
            data = path.read_bytes()
    finally:
        quiet.setLevel(level)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    check = torch.randn(3, 3, resolution, resolution, generator=gen)
    with torch.no_grad():
        expected = model(check).numpy()
    got = session.run(["logits"], {"images": check.numpy()})[0]
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= ONNX_TOLERANCE:
        raise RuntimeError(
            f"the ONNX graph disagrees with the PyTorch module (max abs diff {diff:.3g} > {ONNX_TOLERANCE}); "
            "nothing was written"
        )
    return data, diff


def build_export(
    recipe: Recipe,
    *,
    formats: tuple[str, ...] | str = FORMATS,
    trained: TrainedWeights | None = None,
    provenance: dict | None = None,
    seed: int = 0,
) -> ExportBundle:
    """Everything an export holds, in memory. Random initial weights (seeded) unless ``trained``."""
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
        "kind": "tinyscale.export.core",
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
        files[WEIGHTS] = _state_bytes(model)
        manifest["files"]["safetensors"] = WEIGHTS
    if "onnx" in formats:
        reason = onnx_available()
        if reason:
            notes.append(reason)
        else:
            files[ONNX], diff = _onnx_bytes(model, recipe.resolution, seed)
            manifest["files"]["onnx"] = ONNX
            manifest["onnx_max_abs_diff"] = diff
            notes.append(f"ONNX verified with onnxruntime: max abs diff {diff:.2g} (tolerance {ONNX_TOLERANCE:g})")
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    return ExportBundle(files=files, manifest=manifest, notes=tuple(notes), onnx_max_abs_diff=diff)


def _archive_kind(path: Path) -> str | None:
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


# Compressed or archive formats this module does not write: a path ending in one is a mistake,
# not a directory name.
UNSUPPORTED_ARCHIVES = (".tar.bz2", ".tbz", ".tbz2", ".tar.xz", ".txz", ".tar.zst", ".tzst", ".7z", ".rar",
                        ".gz", ".bz2", ".xz", ".zst", ".lz", ".lzma")


def check_export_path(out: str | os.PathLike, *, force: bool = False) -> Path:
    """``out`` as a Path, refused (ValueError) before anything is built when it cannot or must
    not be written: empty, an archive suffix tinyscale does not write, an archive name that is a
    directory, or an existing export or archive (unless ``force``)."""
    if not str(os.fspath(out)).strip():
        raise ValueError("the export path is empty: give --out DIR or --out FILE.zip|.tar|.tar.gz|.tgz")
    out = Path(out)
    kind = _archive_kind(out)
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
    kind = _archive_kind(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind:
        write_bytes_atomically(out, archive_bytes(bundle, kind))
        return out
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
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


def read_export(path: str | os.PathLike) -> dict[str, bytes]:
    """The files of an export directory or archive (name -> bytes)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no export at {path}")
    try:
        if path.is_dir():
            return {p.name: p.read_bytes() for p in path.iterdir() if p.is_file()}
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                return {Path(n).name: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                return {Path(m.name).name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError) as exc:
        # A truncated .tar.gz ends in EOFError, a damaged deflate stream in zlib.error.
        raise ValueError(f"cannot read the export at {path} (damaged or truncated?): {exc}") from None
    raise ValueError(f"{path} is neither an export directory nor a .zip/.tar archive")


def check_manifest(manifest: object) -> Recipe:
    """The recipe of an export manifest, after checking every field `build_export` writes that
    says what the files are: format and kind, a complete recipe of the right types (nothing
    defaulted), and the top-level copies (r, w, d, rules, resolution, input shape) agreeing
    with it. ValueError naming the first problem."""
    if not isinstance(manifest, dict):
        raise ValueError(f"expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("kind") != "tinyscale.export.core":
        raise ValueError(f"kind is {manifest.get('kind')!r}, expected 'tinyscale.export.core'")
    if manifest.get("format") != EXPORT_FORMAT or isinstance(manifest.get("format"), bool):
        raise ValueError(f"format is {manifest.get('format')!r}; this tinyscale reads format {EXPORT_FORMAT}")
    fields = manifest.get("recipe")
    if not isinstance(fields, dict):
        raise ValueError(f"recipe is {fields!r}, expected an object")
    missing = [k for k in RECIPE_FIELDS if k not in fields]
    if missing:
        raise ValueError(f"recipe lacks {', '.join(missing)}")
    for key in ("r", "w", "d"):
        if isinstance(fields[key], bool) or not isinstance(fields[key], (int, float)):
            raise ValueError(f"recipe.{key} is {fields[key]!r}, expected a number")
    if not isinstance(fields["rules"], str):
        raise ValueError(f"recipe.rules is {fields['rules']!r}, expected a string")
    recipe = Recipe.from_dict(fields)  # checks ranges and the integer fields
    expected = {"r": recipe.r, "w": recipe.w, "d": recipe.d, "rules": recipe.rules,
                "resolution": recipe.resolution}
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise ValueError(f"{key} is {manifest.get(key)!r} but the recipe gives {value!r}")
    shape = (manifest.get("input") or {}).get("shape") if isinstance(manifest.get("input"), dict) else None
    if shape != ["batch", 3, recipe.resolution, recipe.resolution]:
        raise ValueError(f"input.shape is {shape!r}, the recipe takes ['batch', 3, {recipe.resolution}, "
                         f"{recipe.resolution}]")
    return recipe


def load_exported(path: str | os.PathLike):
    """Rebuild the exported module (eval mode) from recipe.json + model.safetensors, strict keys."""
    from safetensors.torch import load

    from tinyscale.space.model import build_model

    files = read_export(path)
    if MANIFEST not in files:
        raise ValueError(f"{path} holds no {MANIFEST}; is it a tinyscale export?")
    try:
        manifest = json.loads(files[MANIFEST].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the {MANIFEST} in {path} is unreadable: {exc}") from None
    try:
        recipe = check_manifest(manifest)
    except ValueError as exc:
        raise ValueError(f"the {MANIFEST} in {path} is not a valid tinyscale export: {exc}") from None
    if WEIGHTS not in files:
        raise ValueError(f"{path} holds no {WEIGHTS} (exported without safetensors?)")
    try:
        state = load(files[WEIGHTS])
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ValueError(f"the weights in {path} are unreadable: {exc}") from None
    import torch

    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise ValueError(f"the weights in {path} hold NaN or infinite values ({', '.join(bad[:3])}"
                         f"{', ...' if len(bad) > 3 else ''})")
    model = build_model(recipe)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {path} do not match the recipe's network: {exc}") from None
    return model.eval()


@dataclass(frozen=True)
class ExportResult:
    """What `export_from_study` did: where, the query answer it exported, and the bundle."""

    path: Path | None
    answer: object  # tinyscale.fit.solve.RecipeAnswer
    bundle: ExportBundle
    notes: tuple[str, ...] = field(default=())


def export_from_study(
    study_dir: str | os.PathLike,
    c: float,
    out: str | os.PathLike | None,
    *,
    formats: tuple[str, ...] | str = FORMATS,
    train_steps: int = 0,
    seed: int = 0,
    force: bool = False,
) -> ExportResult:
    """Solve the recipe for ratio ``c`` from the study's saved fit and export it.

    ``out=None`` builds the bundle without writing it (serve it with `archive_bytes`).
    ``train_steps > 0`` trains the network that long on the study's data first. ``force``
    replaces an existing export or archive at ``out``; the path is checked before anything is
    solved or trained.
    """
    from tinyscale.fit.gp import FIT_FILE
    from tinyscale.fit.solve import RecipeSolver

    formats = parse_formats(formats)
    check_seed(seed)
    if out is not None:
        check_export_path(out, force=force)
    solver = RecipeSolver.load(study_dir)
    answer = solver.solve(c)
    trained = None
    if train_steps:
        trained = train_for_export(answer.recipe, solver.fit.config, train_steps, seed=seed)
    fit = solver.fit
    provenance = {
        "study": str(Path(study_dir).resolve()),
        "fit": {
            "file": FIT_FILE,
            "created": fit.created,
            "models": list(fit.data.numbers),
            "c_range": list(fit.c_range),
        },
        "query": answer.to_dict(),
    }
    bundle = build_export(answer.recipe, formats=formats, trained=trained, provenance=provenance, seed=seed)
    path = write_export(bundle, out, force=force) if out is not None else None
    return ExportResult(path=path, answer=answer, bundle=bundle, notes=bundle.notes + answer.note_texts)
