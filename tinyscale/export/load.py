"""Reading an export back: its files from a directory or archive, its manifest checked, and
`load_exported` to rebuild the module (``tinyscale.load_exported``)."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile
import zlib
from pathlib import Path

from tinyscale.export.bundle import EXPORT_FORMAT, EXPORT_KIND, MANIFEST, WEIGHTS
from tinyscale.space.recipe import RECIPE_FIELDS, Recipe


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
    if manifest.get("kind") != EXPORT_KIND:
        raise ValueError(f"kind is {manifest.get('kind')!r}, expected {EXPORT_KIND!r}")
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
