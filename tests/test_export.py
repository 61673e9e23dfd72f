"""Export: ONNX equals the PyTorch module, load_exported round trips, archives, clear failures."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import tinyscale
from _fit_fixtures import CONFIG, fitted, write_study
from tinyscale.export import (MANIFEST, ONNX, WEIGHTS, archive_bytes, build_export, export_from_study,
                          export_recipe, load_exported, parse_formats)
from tinyscale.space.recipe import Recipe

RECIPE = Recipe(r=0.75, w=0.6, d=0.7, base_resolution=32, num_classes=10)


def _same_outputs(a, b, res):
    x = torch.randn(4, 3, res, res, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return torch.equal(a(x), b(x))


def test_onnx_export_matches_pytorch_and_is_one_file(tmp_path):
    import numpy as np
    import onnxruntime as ort

    out, bundle = export_recipe(RECIPE, tmp_path / "exp", seed=3)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, WEIGHTS, ONNX])
    assert bundle.onnx_max_abs_diff is not None and bundle.onnx_max_abs_diff <= 1e-4
    # Independently of the exporter's own check: run the written file against the rebuilt module.
    model = load_exported(out)
    session = ort.InferenceSession(str(out / ONNX), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, RECIPE.resolution, RECIPE.resolution, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        expected = model(x).numpy()
    got = session.run(None, {"images": x.numpy()})[0]
    assert got.shape == (5, 10)
    assert float(np.max(np.abs(got - expected))) <= 1e-4
    manifest = json.loads((out / MANIFEST).read_text())
    assert (manifest["r"], manifest["w"], manifest["d"], manifest["rules"]) == (0.75, 0.6, 0.7, "tinynet")
    assert manifest["resolution"] == 24 and manifest["weights"] == {"init": "random", "seed": 3}
    assert manifest["macs"] > 0 and manifest["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["exp", "exp.zip", "exp.tar", "exp.tar.gz"])
def test_load_exported_round_trips(tmp_path, name):
    out, bundle = export_recipe(RECIPE, tmp_path / name, formats="safetensors", seed=1)
    model = tinyscale.load_exported(out)
    torch.manual_seed(1)
    from tinyscale.space.model import build_model

    original = build_model(RECIPE).eval()
    assert model.recipe == RECIPE
    assert _same_outputs(model, original, RECIPE.resolution)
    assert set(model.state_dict()) == set(original.state_dict())


def test_archive_bytes_serve_the_same_files():
    bundle = build_export(RECIPE, formats="safetensors")
    import io

    with zipfile.ZipFile(io.BytesIO(archive_bytes(bundle))) as zf:
        assert sorted(zf.namelist()) == sorted([MANIFEST, WEIGHTS])
        assert zf.read(WEIGHTS) == bundle.files[WEIGHTS]


def test_the_manifest_kind_names_the_format_not_the_module(tmp_path):
    """"kind" is the export format's name: exports written before the library became packages
    say "tinyscale.export" and must keep loading; another kind is refused."""
    out, _ = export_recipe(RECIPE, tmp_path / "exp", formats="safetensors")
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "tinyscale.export"
    assert load_exported(out).recipe == RECIPE
    manifest["kind"] = "tinyscale.export.core"
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="kind is 'tinyscale.export.core', expected 'tinyscale.export'"):
        load_exported(out)


def test_mismatched_or_damaged_exports_are_refused(tmp_path):
    out, _ = export_recipe(RECIPE, tmp_path / "exp", formats="safetensors")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["recipe"]["w"] = manifest["w"] = 1.0  # a wider network: the weights no longer fit (strict keys/shapes)
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="do not match"):
        load_exported(out)
    (out / WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        load_exported(out)
    with pytest.raises(ValueError, match="already holds an export"):
        export_recipe(RECIPE, out, formats="safetensors")
    with pytest.raises(ValueError, match="no export"):
        load_exported(tmp_path / "missing")
    with pytest.raises(ValueError, match="subset"):
        parse_formats("safetensors,tflite")


def test_missing_onnx_extras_fall_back_with_a_note(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    bundle = build_export(RECIPE)
    assert ONNX not in bundle.files and WEIGHTS in bundle.files
    assert any("onnxscript not installed" in n and "tinyscale[export]" in n for n in bundle.notes)


def test_export_from_a_study_with_training(tmp_path):
    study = write_study(tmp_path / "study", [], config=CONFIG)
    fitted(1).save(study)
    result = export_from_study(study, 0.3, tmp_path / "trained.zip", formats="safetensors", train_steps=3)
    manifest = json.loads(zipfile.ZipFile(result.path).read(MANIFEST))
    assert manifest["weights"]["init"] == "trained" and manifest["weights"]["steps"] == 3
    assert len(manifest["input"]["normalise"]["mean"]) == 3
    assert manifest["provenance"]["query"]["target"] == 0.3
    assert manifest["recipe"] == result.answer.recipe.to_dict()
    model = load_exported(result.path)
    torch.manual_seed(0)
    from tinyscale.space.model import build_model

    assert not _same_outputs(model, build_model(result.answer.recipe).eval(), result.answer.recipe.resolution)


def test_an_export_killed_while_it_trains_continues_to_the_same_weights(tmp_path, monkeypatch, capsys):
    from tinyscale.train import trainer

    study = write_study(tmp_path / "study", [], config=CONFIG)
    fitted(1).save(study)
    whole = export_from_study(study, 0.3, tmp_path / "whole.zip", formats="safetensors", train_steps=6)
    progress_folder = study / "checkpoints" / "progress"
    assert not progress_folder.exists()  # done: nothing left to continue from
    real = trainer.lr_at
    killed: list[int] = []

    class Kill(BaseException):
        pass

    def lr_at(step, config):  # killed once the progress of 3 steps is saved
        if step == 4 and not killed:
            killed.append(step)
            raise Kill
        return real(step, config)

    monkeypatch.setattr(trainer, "PROGRESS_EVERY", 0.0)
    monkeypatch.setattr(trainer, "lr_at", lr_at)
    with pytest.raises(Kill):
        export_from_study(study, 0.3, tmp_path / "cut.zip", formats="safetensors", train_steps=6, show_progress=True)
    assert len(list(progress_folder.glob("export-*.pt"))) == 1 and not (tmp_path / "cut.zip").exists()
    resumed = export_from_study(study, 0.3, tmp_path / "cut.zip", formats="safetensors", train_steps=6,
                                show_progress=True)
    assert "export: training: 100%" in capsys.readouterr().err  # the bar, on stderr
    from safetensors.torch import load as load_tensors

    a, b = load_tensors(resumed.bundle.files[WEIGHTS]), load_tensors(whole.bundle.files[WEIGHTS])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same weights, bit for bit
    assert resumed.bundle.files[WEIGHTS] == whole.bundle.files[WEIGHTS]  # and the same file, byte for byte
    assert not progress_folder.exists()
    # A study folder the user cannot write: the export trains all the same, without a progress file.
    monkeypatch.undo()
    real_mkdir = Path.mkdir

    def refused(self, *args, **kwargs):
        if self == progress_folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    again = export_from_study(study, 0.3, tmp_path / "ro.zip", formats="safetensors", train_steps=6)
    assert again.bundle.files[WEIGHTS] == whole.bundle.files[WEIGHTS] and not progress_folder.exists()


def test_import_tinyscale_does_not_import_torch():
    import subprocess

    code = "import sys, tinyscale; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _Stop(Exception):
    """Raised by the recording trainer: the test has seen the data, no need to train."""


def _record_training_data(monkeypatch) -> list:
    import tinyscale.train.trainer

    seen = []

    def recording(recipe, data, *args, **kwargs):
        seen.append(data)
        raise _Stop

    monkeypatch.setattr(tinyscale.train.trainer, "train_recipe", recording)
    return seen


def test_export_trains_on_the_studys_data_subsets(tmp_path, monkeypatch):
    # `tinyscale export --train-steps` on a study that trains on seeded subsets of its data: the
    # network is trained on exactly those subsets (the trials' data), not on the whole data set.
    import copy
    from dataclasses import replace

    from tinyscale.cli import main
    from tinyscale.data.datasets import generate_data

    config = replace(CONFIG, train_size=200, val_size=100, seed=4)
    study = write_study(tmp_path / "study", [], config=config)
    fit = copy.copy(fitted(1))
    fit.config = config
    fit.save(study)
    seen = _record_training_data(monkeypatch)
    with pytest.raises(_Stop):
        main(["export", str(study), "--ratio", "0.3", "--out", str(tmp_path / "out"), "--format", "safetensors",
              "--train-steps", "2"])
    (data,) = seen
    assert len(data.train_images) == 200 and len(data.val_images) == 100  # the generated set holds 640 / 320
    whole = generate_data(seed=4).subset(200, 100, seed=4)  # the study's subsets, derived independently
    assert torch.equal(data.train_images, whole.train_images) and torch.equal(data.val_labels, whole.val_labels)


def test_export_decodes_a_folder_dataset_at_the_studys_size(tmp_path, monkeypatch):
    from dataclasses import replace

    from PIL import Image

    from tinyscale.export import train_for_export

    for i, (cls, color) in enumerate((("cat", (255, 0, 0)), ("dog", (0, 0, 255))) * 4):
        path = tmp_path / "images" / "train" / cls / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), color).save(path)
    # Base 16 px and r up to 1: the study's trials decode folder images at 16 px (the loader's
    # own default is 64).
    config = replace(CONFIG, data=str(tmp_path / "images"), base_resolution=16, num_classes=2)
    seen = _record_training_data(monkeypatch)
    with pytest.raises(_Stop):
        train_for_export(config.recipe(0.5, 0.5, 0.5), config, 2)
    (data,) = seen
    assert tuple(data.train_images.shape[1:]) == (3, 16, 16)


def test_onnx_check_scales_with_the_logits_and_still_catches_a_wrong_graph(monkeypatch):
    # A briefly trained network's logits reach the hundreds, where float32 rounding alone is
    # above 1e-4 in absolute terms: 5 steps on toy data give logits of about 300, about 1e-3 apart.
    import tinyscale.export.onnx as onnx_writer
    from tinyscale.data.datasets import generate_data
    from tinyscale.train.config import TrainConfig
    from tinyscale.train.trainer import train_recipe

    data = generate_data(num_classes=10, train_size=256, val_size=64, size=32, seed=0)
    trained = []
    train_recipe(RECIPE, data, TrainConfig(steps=5, batch_size=64, threads=1), seed=0, on_trained=trained.append)
    bytes_, diff = onnx_writer.network_onnx(trained[0], RECIPE.resolution, seed=0)
    assert bytes_ and diff > onnx_writer.ONNX_TOLERANCE  # refused by an absolute 1e-4, as before
    # A graph that really disagrees still fails, however large the logits.
    monkeypatch.setattr(onnx_writer, "onnx_max_abs_diff", lambda *a, **k: (0.2, 500.0))
    with pytest.raises(RuntimeError, match="disagrees"):
        onnx_writer.network_onnx(trained[0], RECIPE.resolution, seed=0)
    monkeypatch.setattr(onnx_writer, "onnx_max_abs_diff", lambda *a, **k: (2e-4, 0.5))
    with pytest.raises(RuntimeError, match="disagrees"):
        onnx_writer.network_onnx(trained[0], RECIPE.resolution, seed=0)


def test_a_graph_that_disagrees_is_one_line_and_exit_1_with_nothing_written(tmp_path, monkeypatch, capsys):
    # The toolchain's fault, not the user's input: like a full disk, exit 1, one line, no traceback.
    import tinyscale.export.onnx as onnx_writer
    from tinyscale.cli import main

    study = write_study(tmp_path / "study", [])
    fitted(1).save(study)
    monkeypatch.setattr(onnx_writer, "onnx_max_abs_diff", lambda *a, **k: (0.2, 5.0))
    out = tmp_path / "out.zip"
    code = main(["export", str(study), "--ratio", "0.3", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "the ONNX graph disagrees with the PyTorch module" in err and not out.exists()


def test_the_same_weights_give_the_same_safetensors_bytes():
    from tinyscale.export.bundle import safetensors_bytes
    from tinyscale.space.model import build_model

    torch.manual_seed(0)
    model = build_model(RECIPE)
    # safetensors orders several metadata keys at random: 20 writes must still be one file.
    assert len({safetensors_bytes(model) for _ in range(20)}) == 1
