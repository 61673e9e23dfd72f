"""Reading an export back: its files from a directory or archive, its manifest checked, and
`load_exported` to rebuild the module (``tinyscale.load_exported``)."""

from __future__ import annotations

import os
import tarfile
import zipfile
import zlib
from pathlib import Path

from tinyscale.export.bundle import EXPORT_FORMAT, EXPORT_KIND, MANIFEST, WEIGHTS
from tinyscale.limits import MAX_MANIFEST_BYTES, MAX_WEIGHTS_BYTES, is_exact_int
from tinyscale.space.cost import cost
from tinyscale.space.recipe import RECIPE_FIELDS, Recipe
from tinyscale.storage import loads_json, read_bounded


# What loading reads of an export, and the most each may hold; nothing else is read.
MEMBER_LIMITS = {MANIFEST: MAX_MANIFEST_BYTES, WEIGHTS: MAX_WEIGHTS_BYTES}
MAX_MEMBERS = 10_000  # entries of an export archive (an export has three files)


def read_export(path: str | os.PathLike, names: tuple[str, ...] = (MANIFEST, WEIGHTS)) -> dict[str, bytes]:
    """The files ``names`` of an export directory or archive (name -> bytes; a name it lacks is
    left out). Each is read only after its size is checked against `MEMBER_LIMITS`, so a crafted
    archive cannot make this allocate more; other files are never read. In an archive the
    export's files are those at its top level, or those of its one folder when it holds nothing
    else (``zip -r x.zip export/``): a member deeper down never stands in for one."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no export at {path}")
    try:
        if path.is_dir():
            return {n: read_bounded(path / n, MEMBER_LIMITS[n], f"{n} of an export") for n in names
                    if (path / n).exists()}
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                infos = {i.filename: i for i in zf.infolist() if not i.is_dir()}
                members = _export_members(path, infos)
                return {n: _bounded(path, n, infos[members[n]].file_size, lambda m: zf.open(m), members[n])
                        for n in names if n in members}
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tf:
                infos = {}
                for member in tf:
                    if len(infos) >= MAX_MEMBERS:
                        raise ValueError(f"{path} holds more than {MAX_MEMBERS:,} entries; an export holds three")
                    if member.isfile():
                        infos[member.name] = member
                members = _export_members(path, infos)
                return {n: _bounded(path, n, infos[members[n]].size, lambda m: tf.extractfile(infos[m]), members[n])
                        for n in names if n in members}
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, RuntimeError,
            NotImplementedError) as exc:
        # A truncated .tar.gz ends in EOFError, a damaged deflate stream in zlib.error, an
        # encrypted zip member in RuntimeError, an unknown compression in NotImplementedError.
        raise ValueError(f"cannot read the export at {path} (damaged or truncated?): {exc}") from None
    raise ValueError(f"{path} is neither an export directory nor a .zip/.tar archive")


def _export_members(path: Path, names) -> dict[str, str]:
    """Export file name -> the archive member holding it (see `read_export`); ValueError when a
    file occurs twice or the archive has more entries than an export could."""
    if len(names) > MAX_MEMBERS:
        raise ValueError(f"{path} holds more than {MAX_MEMBERS:,} entries; an export holds three")
    files = [(name, name[2:] if name.startswith("./") else name) for name in names]
    folders = {rel.split("/", 1)[0] for _, rel in files if "/" in rel}
    if len(folders) == 1 and all("/" in rel for _, rel in files):
        cut = len(folders.pop()) + 1
        files = [(name, rel[cut:]) for name, rel in files]
    members: dict[str, str] = {}
    for name, rel in files:
        if "/" in rel or rel not in MEMBER_LIMITS:
            continue
        if rel in members:
            raise ValueError(f"{path} holds {rel} twice ({members[rel]!r} and {name!r})")
        members[rel] = name
    return members


def _bounded(path: Path, name: str, size: int, opener, member: str) -> bytes:
    """An archive member's bytes, refused when its header or its content exceeds the limit."""
    limit = MEMBER_LIMITS[name]
    if size > limit:
        raise ValueError(f"the {name} in {path} is {size:,} bytes; an export's may be at most {limit:,}")
    with opener(member) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"the {name} in {path} is larger than an export's may be ({limit:,} bytes)")
    return data


def check_manifest(manifest: object) -> Recipe:
    """The recipe of an export manifest, after checking every field `build_export` writes that
    says what the files are: format and kind, a complete recipe of the right types (nothing
    defaulted), and the top-level copies (r, w, d, rules, resolution, input shape) agreeing
    with it. ValueError naming the first problem."""
    if not isinstance(manifest, dict):
        raise ValueError(f"expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("kind") != EXPORT_KIND:
        raise ValueError(f"kind is {manifest.get('kind')!r}, expected {EXPORT_KIND!r}")
    if not is_exact_int(manifest.get("format"), EXPORT_FORMAT):
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
        manifest = loads_json(files[MANIFEST].decode("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON, or nested too deeply
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
    # The network is built only once the weights can fill it: a crafted recipe.json must not make
    # this allocate a network larger than the (size-checked) weights.
    values, params = sum(v.numel() for v in state.values()), cost(recipe).params
    if values < params:
        raise ValueError(f"the weights in {path} do not match the recipe's network: they hold {values:,} values, "
                         f"it has {params:,} parameters")
    model = build_model(recipe)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights in {path} do not match the recipe's network: {exc}") from None
    return model.eval()
