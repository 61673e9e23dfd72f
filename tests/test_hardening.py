"""Issue 14: bad inputs and faults end in one clear line and lose nothing.

Each test reproduces one item of the issue (numbers in the test names' comments). Faults of the
machine (a full disk, a database that cannot be written) are made by making the real write
fail with the error the system gives; a read-only directory is a real read-only bind mount.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from _cli import cli
from _fit_fixtures import CONFIG, fitted, synthetic_trials, write_study
from tinyscale.export import MANIFEST, WEIGHTS, build_export, export_recipe, load_exported, write_export
from tinyscale.space.recipe import Recipe
from tinyscale.study.samplers.base import iter_recipes
from tinyscale.study.store import CONFIG_FILE, TRIALS_FILE, Study
from tinyscale.study.trial import StudyConfig

RECIPE = Recipe(r=0.75, w=0.6, d=0.7, base_resolution=32, num_classes=10)
# A study whose trials train in about a second (generated data, 2 steps).
TINY = StudyConfig(data="generated", base_resolution=32, num_classes=10, window=(0.05, 0.3), steps=2, batch_size=8,
                   train_size=64, val_size=32, extra={"bn_calibration_images": 16})
REPO = Path(__file__).resolve().parents[1]


def assert_one_line_error(code, err: str, *words: str) -> None:
    assert code not in (0, None), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def study_with_trials(tmp_path_factory):
    """12 completed trials and a fit: what `fit`, `compare` and `fidelity` need to get to training."""
    study = write_study(tmp_path_factory.mktemp("trials") / "study", synthetic_trials(seed=0)[:12])
    fitted(1).save(study)
    return study


@pytest.fixture(scope="module")
def study_with_fit(tmp_path_factory):
    study = write_study(tmp_path_factory.mktemp("fitted") / "study", [], config=CONFIG)
    fitted(1).save(study)
    return study


def export_args(study, out, *extra):
    return ("export", study, "--ratio", "0.3", "--format", "safetensors", "--out", out, *extra)


# ------------------------------------------------------------------ data lost or silently wrong
def test_export_archive_or_export_folder_is_not_overwritten_without_force(capsys, study_with_fit, tmp_path):  # 1
    for name in ("x.zip", "x.tar.gz"):
        target = tmp_path / name
        target.write_bytes(b"an unrelated user file")
        code, _, err = cli(capsys, *export_args(study_with_fit, target))
        assert_one_line_error(code, err, "already exists", "--force")
        assert target.read_bytes() == b"an unrelated user file"
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / WEIGHTS).write_bytes(b"someone's weights")
    code, _, err = cli(capsys, *export_args(study_with_fit, folder))
    assert_one_line_error(code, err, "already holds an export", "--force")
    assert (folder / WEIGHTS).read_bytes() == b"someone's weights" and not (folder / MANIFEST).exists()
    code, out, _ = cli(capsys, *export_args(study_with_fit, tmp_path / "x.zip", "--force"))
    assert code == 0 and load_exported(tmp_path / "x.zip").recipe.num_classes == 10


def test_bad_threads_are_refused_before_any_trial_and_failed_trials_can_be_retried(capsys, tmp_path):  # 2, 12
    for option, value in (("--threads", -1), ("--threads", 0), ("--threads", 1000), ("--workers", 0),
                          ("--workers", 100000)):
        code, _, err = cli(capsys, "study", "--data", "generated", "--out", tmp_path / "s", "--trials", 2,
                           option, value)
        assert_one_line_error(code, err, option[2:])
        assert not (tmp_path / "s").exists()
    # Trials that failed for the machine's reason are trained again with --retry-failed.
    study = Study.create(tmp_path / "t", TINY)
    study.start_trial(0, next(iter_recipes(TINY)), seed=0)
    study.fail_trial(0, "ValueError: threads must be a positive integer, got -1")
    study.close()
    args = ("study", "--resume", tmp_path / "t", "--trials", 1, "--workers", 1, "--threads", 1, "--quiet")
    code, _, err = cli(capsys, *args)
    assert_one_line_error(code, err, "no trial of the study completed", "threads must be")
    code, out, err = cli(capsys, *args, "--retry-failed")
    assert code == 0, err
    with Study.open(tmp_path / "t") as study:
        assert study.trial(0).state == "completed"


def _png16(path: Path, value: int) -> None:
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 12), value, dtype=np.uint16)).save(path)


def test_16_bit_pngs_decode_to_their_grey_level(tmp_path):  # 3
    from tinyscale.data.datasets import load_data

    for cls, value in (("dark", 16384), ("light", 49152)):
        for i in range(4):
            _png16(tmp_path / "train" / cls / f"{i}.png", value)
    assert Image.open(tmp_path / "train" / "dark" / "0.png").mode.startswith("I")
    data = load_data(str(tmp_path), decode_size=8)
    images = torch.cat([data.train_images, data.val_images])
    labels = torch.cat([data.train_labels, data.val_labels])
    dark = images[labels == data.class_names.index("dark")].float().mean().item()
    light = images[labels == data.class_names.index("light")].float().mean().item()
    assert abs(dark - 16384 / 257) < 1.5 and abs(light - 49152 / 257) < 1.5


def test_an_empty_export_path_is_refused(capsys, study_with_fit, tmp_path, monkeypatch):  # 4
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, *export_args(study_with_fit, ""))
    assert_one_line_error(code, err, "empty")
    assert list(tmp_path.iterdir()) == []


def _two_classes(root: Path) -> None:
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        for i in range(5):
            (root / "train" / cls).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (10, 10), color).save(root / "train" / cls / f"{i}.png")


def test_hidden_empty_and_unreadable_class_folders(tmp_path):  # 5
    from tinyscale.data.datasets import load_data

    _two_classes(tmp_path)
    hidden = tmp_path / "train" / ".ipynb_checkpoints"
    hidden.mkdir()
    Image.new("RGB", (10, 10)).save(hidden / "0-checkpoint.png")
    Image.new("RGB", (10, 10)).save(tmp_path / "train" / "cat" / "._0.png")  # hidden file in a class
    data = load_data(str(tmp_path), decode_size=8)
    assert data.class_names == ("cat", "dog") and len(data.train_images) + len(data.val_images) == 10
    (tmp_path / "train" / "bird").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*bird"):
        load_data(str(tmp_path), decode_size=8)
    (tmp_path / "train" / "bird" / "0.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"no readable images in class folder .*bird"):
        load_data(str(tmp_path), decode_size=8)


# ------------------------------------------------------------------ tracebacks instead of a message
@pytest.mark.parametrize("base", [8, 16])
def test_scale_table_at_small_bases(capsys, base):  # 6
    code, out, err = cli(capsys, "scale", "--table", "--base-resolution", base, "--num-classes", 10)
    assert code == 0 and err == "" and "tinynet-a" in out and "out of reach" in out


@pytest.mark.parametrize("option, value", [("--base-resolution", 0), ("--base-resolution", 1),
                                           ("--base-resolution", 100000), ("--num-classes", 1)])
def test_scale_table_with_an_impossible_context(capsys, option, value):  # 6
    code, _, err = cli(capsys, "scale", "--table", option, value)
    assert_one_line_error(code, err, "tinyscale scale: error:")


def test_study_out_onto_a_file_or_an_impossible_path(capsys, tmp_path):  # 7
    target = tmp_path / "a-file"
    target.write_text("keep me")
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", target, "--trials", 1, "--quiet")
    assert_one_line_error(code, err, "not a directory")
    assert target.read_text() == "keep me"
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", "/proc/no-such/dir", "--trials", 1)
    assert_one_line_error(code, err, "/proc/no-such")


def test_export_onto_a_full_disk_leaves_nothing_behind(capsys, study_with_fit, tmp_path, monkeypatch):  # 7
    old = tmp_path / "old.zip"
    write_export(build_export(RECIPE, formats="safetensors"), old)
    before = old.read_bytes()
    monkeypatch.setattr("tinyscale.storage.os.fsync", no_space)
    for out, extra in ((tmp_path / "new.zip", ()), (old, ("--force",)), (tmp_path / "dir", ())):
        code, _, err = cli(capsys, *export_args(study_with_fit, out, *extra))
        assert_one_line_error(code, err, "No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.zip"]  # no temporary file, no new export
    assert old.read_bytes() == before
    (tmp_path / "dir.zip").mkdir()
    code, _, err = cli(capsys, *export_args(study_with_fit, tmp_path / "dir.zip"))
    assert_one_line_error(code, err, "is a directory")


def test_an_export_that_cannot_start_writing_names_the_export_not_a_temporary(capsys, study_with_fit, tmp_path,
                                                                              monkeypatch):
    """A folder refusing new files (read-only, or /proc): the error names what the user asked
    for, where the temporary file or staging folder would have gone, not their invented names."""
    import os
    import tempfile

    real_open = os.open

    def refuse_open(name, *args, **kwargs):
        if ".tmp-" in str(name):  # the study's files are still read
            raise PermissionError(13, "Permission denied", name)
        return real_open(name, *args, **kwargs)

    def refuse_mkdtemp(prefix="", dir=None, **kwargs):
        raise PermissionError(13, "Permission denied", os.path.join(dir, prefix + "abcd1234"))

    monkeypatch.setattr("tinyscale.storage.os.open", refuse_open)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse_mkdtemp)
    for out in (tmp_path / "new.zip", tmp_path / "dir"):
        code, _, err = cli(capsys, *export_args(study_with_fit, out))
        assert_one_line_error(code, err, f"Permission denied: {out}")
        assert ".tmp" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_fit_that_cannot_be_written_keeps_the_old_one(capsys, tmp_path, monkeypatch):  # 7
    directory = write_study(tmp_path / "s", synthetic_trials(seed=0)[:12])
    path = fitted(1).save(directory)
    before = sorted(p.name for p in directory.iterdir()), path.read_text()
    monkeypatch.setattr("tinyscale.storage.os.fsync", no_space)
    code, _, err = cli(capsys, "fit", directory, "--method", "pareto")
    assert_one_line_error(code, err, "No space left on device")
    assert (sorted(p.name for p in directory.iterdir()), path.read_text()) == before


def test_resume_onto_a_full_disk_is_one_line(capsys, tmp_path, monkeypatch):  # 7, 21
    Study.create(tmp_path / "s", TINY).close()

    def full(self, key, value):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Study, "set_meta", full)
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--trials", 1, "--workers", 1, "--quiet")
    assert_one_line_error(code, err, "disk is full")
    assert "unreadable" not in err


def test_a_truncated_tar_gz_is_a_value_error(tmp_path):  # 8
    path, _ = export_recipe(RECIPE, tmp_path / "e.tar.gz", formats="safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_exported(path)


def test_a_closed_pipe_is_no_traceback():  # 9
    read, write = os.pipe()
    os.close(read)  # the reader (`head -c 10`) is gone before we write
    try:
        done = subprocess.run([sys.executable, "-m", "tinyscale.cli", "scale", "--table"], stdout=write,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    finally:
        os.close(write)
    assert done.returncode != 0 and done.stderr == ""


def test_a_damaged_trial_row_is_named(capsys, tmp_path):  # 10
    directory = write_study(tmp_path / "s", synthetic_trials(seed=0)[:12])
    with sqlite3.connect(directory / TRIALS_FILE) as conn:
        conn.execute("UPDATE trials SET accuracy = 'abc' WHERE number = 3")
    for command in ("trials", "fit"):
        code, out, err = cli(capsys, command, directory)
        assert_one_line_error(code, err, "trial 3", "damaged", "accuracy")
        assert out == ""


# ------------------------------------------------------------------ concurrency and validation
def test_a_second_process_on_a_study_is_refused_naming_the_holder(capsys, tmp_path):  # 11
    from tinyscale.study.store import StudyLock

    Study.create(tmp_path / "s", TINY).close()
    lock = StudyLock.acquire(tmp_path / "s")
    try:
        code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--trials", 1, "--workers", 1, "--quiet")
        assert_one_line_error(code, err, f"pid {os.getpid()}", "being run by")
    finally:
        lock.release()
    with Study.open(tmp_path / "s") as study:
        assert study.trials() == []


def test_settings_that_cannot_train_are_refused_up_front(capsys, tmp_path):  # 13
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", tmp_path / "a", "--trials", 1,
                       "--batch-size", 1)
    assert_one_line_error(code, err, "batch_size must be at least 2")
    for cls in ("cat", "dog"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        Image.new("RGB", (10, 10)).save(tmp_path / "ds" / cls / "0.png")
    code, _, err = cli(capsys, "study", "--data", tmp_path / "ds", "--out", tmp_path / "b", "--trials", 1)
    assert_one_line_error(code, err, "at least 2")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_study_where_nothing_completes_exits_non_zero(capsys, tmp_path):  # 14
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", tmp_path / "a", "--trials", 1,
                       "--window", "100,1000")
    assert_one_line_error(code, err, "no network reaches the window")
    assert not (tmp_path / "a").exists()


def test_demo_checks_its_port_before_training(capsys, tmp_path):  # 15
    code, _, err = cli(capsys, "demo", "--out", tmp_path / "d", "--port", 0)
    assert_one_line_error(code, err, "port")
    assert not (tmp_path / "d").exists()


def test_a_relative_data_path_is_stored_resolved(capsys, tmp_path, monkeypatch):  # 16
    _two_classes(tmp_path / "ds")
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "study", "--data", "ds", "--out", "s", "--trials", 1, "--steps", 2,
                       "--batch-size", 4, "--base-resolution", 16, "--r-range", "0.5,1", "--window", "0.05,0.5",
                       "--workers", 1, "--threads", 1, "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "s" / CONFIG_FILE).read_text())["data"] == str(tmp_path / "ds")
    monkeypatch.chdir("/")
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--data", tmp_path / "ds", "--trials", 1,
                       "--workers", 1, "--quiet")
    assert code == 0, err


def test_a_deleted_config_is_rebuilt_or_explained(capsys, tmp_path):  # 17
    Study.create(tmp_path / "s", TINY).close()
    (tmp_path / "s" / CONFIG_FILE).unlink()
    with pytest.warns(UserWarning, match="rebuilt"):
        with Study.open(tmp_path / "s") as study:
            assert study.config == TINY
    (tmp_path / "s" / CONFIG_FILE).unlink()
    with sqlite3.connect(tmp_path / "s" / TRIALS_FILE) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'config'")  # a study made before the copy was kept
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--trials", 1)
    assert_one_line_error(code, err, "restore config.json", "move trials.sqlite away")


@pytest.mark.parametrize("argv", [
    ["recipe", "{study}", "--ratio", "1e30"],
    ["export", "{study}", "--ratio", "1e30", "--out", "{tmp}/x.zip"],
    ["scale", "--rule", "efficientnet", "--ratio", "1e30"],
])
def test_one_rule_for_absurd_targets(capsys, study_with_fit, tmp_path, argv):  # 18
    code, _, err = cli(capsys, *[a.format(study=study_with_fit, tmp=tmp_path) for a in argv])
    assert_one_line_error(code, err, "target ratio c must be between")
    assert not (tmp_path / "x.zip").exists()


def test_an_unknown_archive_suffix_is_an_error(capsys, study_with_fit, tmp_path):  # 19
    code, _, err = cli(capsys, *export_args(study_with_fit, tmp_path / "x.tar.bz2"))
    assert_one_line_error(code, err, ".tar.bz2")
    assert list(tmp_path.iterdir()) == []


def _tamper(manifest: dict, change: str) -> None:
    if change == "format":
        manifest["format"] = 99
    elif change == "kind":
        manifest["kind"] = "something.else"
    elif change == "both-missing":
        del manifest["format"], manifest["kind"]
    elif change == "shape":
        manifest["input"]["shape"] = ["batch", 3, 999, 999]
    elif change == "top-level-w":
        manifest["w"] = 2.0
    elif change == "recipe-missing-field":
        del manifest["recipe"]["num_classes"]
    elif change == "recipe-wrong-type":
        manifest["recipe"]["r"] = "0.75"
    elif change == "not-an-object":
        manifest.clear()
        manifest["recipe"] = [1, 2]


@pytest.mark.parametrize("change", ["format", "kind", "both-missing", "shape", "top-level-w", "recipe-missing-field",
                                    "recipe-wrong-type", "not-an-object"])
def test_tampered_manifests_are_refused(tmp_path, change):  # 20
    out, _ = export_recipe(RECIPE, tmp_path / "e", formats="safetensors")
    manifest = json.loads((out / MANIFEST).read_text())
    _tamper(manifest, change)
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not a valid tinyscale export"):
        load_exported(out)


def test_nan_weights_are_refused(tmp_path):  # 20
    import torch
    from safetensors.torch import load, save

    out, _ = export_recipe(RECIPE, tmp_path / "e", formats="safetensors")
    state = load((out / WEIGHTS).read_bytes())
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    (out / WEIGHTS).write_bytes(save(state))
    with pytest.raises(ValueError, match="NaN"):
        load_exported(out)


# ------------------------------------------------------------------ misleading messages (21)
def test_a_read_only_file_system_reads_and_refuses_to_write_in_one_line(tmp_path):  # 7, 21
    directory = write_study(tmp_path / "ro" / "s", synthetic_trials(seed=0)[:4])
    fitted(1).save(directory)
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\nfrom tinyscale.cli import main\n"
        f"codes = [main(['trials', {str(directory)!r}]), main(['recipe', {str(directory)!r}, '--ratio', '0.3']),\n"
        f"         main(['export', {str(directory)!r}, '--ratio', '0.3', '--format', 'safetensors', '--out', "
        f"{str(tmp_path / 'ro' / 'x.zip')!r}])]\n"
        "print('codes', codes)\n"
    )
    mount = f"mount --bind -o ro {tmp_path / 'ro'} {tmp_path / 'ro'}"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "sh", "-c", mount]).returncode != 0:
        pytest.skip("needs root and unshare for a read-only bind mount")
    done = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && {sys.executable} {script}"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=120)
    assert "4 finished: 4 completed" in done.stdout and "codes [0, 0, 1]" in done.stdout, done.stderr
    assert_one_line_error(1, done.stderr, "tinyscale export: error: Read-only file system")
    assert sorted(p.name for p in directory.iterdir()) == [CONFIG_FILE, "fit.json", TRIALS_FILE]


def test_misleading_messages(capsys, tmp_path, study_with_fit):  # 21
    directory = write_study(tmp_path / "s", synthetic_trials(seed=0)[:8])
    code, _, err = cli(capsys, "fit", directory, "--method", "pareto", "--pareto-k", 3)
    assert_one_line_error(code, err, "--pareto-k 3 is too few")
    code, _, err = cli(capsys, "app", "--study", directory, "--host", "999.1.1.1", "--port", 8599)
    assert_one_line_error(code, err, "--host 999.1.1.1")
    for argv in (["fit", directory, "--seed", 2**70], export_args(study_with_fit, tmp_path / "e", "--seed", 2**70),
                 ["study", "--data", "generated", "--out", tmp_path / "n", "--trials", 1, "--seed", 2**70]):
        code, _, err = cli(capsys, *argv)
        assert_one_line_error(code, err, "seed must be an integer from 0 to")
    (tmp_path / "s" / CONFIG_FILE).write_text("[1, 2]")
    code, _, err = cli(capsys, "trials", directory)
    assert_one_line_error(code, err, "expected a JSON object")
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "missing", "--data", "generated", "--trials", 1)
    assert_one_line_error(code, err, "no study at")
    assert not (tmp_path / "missing").exists()


def test_a_store_the_machine_cannot_open_is_not_called_damaged(capsys, tmp_path, monkeypatch):  # 21
    import tinyscale.study.database

    directory = write_study(tmp_path / "s", synthetic_trials(seed=0)[:4])
    real = tinyscale.study.database.connect
    # What SQLite says when it cannot create its files beside the database (disk, permissions).
    monkeypatch.setattr(tinyscale.study.database, "connect", lambda path: real(tmp_path / "gone" / "x.sqlite"))
    code, _, err = cli(capsys, "trials", directory)
    assert_one_line_error(code, err, "unable to open database file", "disk space and permissions")
    assert "unreadable" not in err


def test_resuming_with_fewer_trials_than_finished_is_refused(capsys, tmp_path):  # 21
    directory = write_study(tmp_path / "s", synthetic_trials(seed=0)[:8])
    code, _, err = cli(capsys, "study", "--resume", directory, "--trials", 2, "--workers", 1, "--quiet")
    assert_one_line_error(code, err, "already has 8 finished trials")


def test_an_interrupted_trial_goes_back_to_pending(capsys, tmp_path, monkeypatch):  # 21
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("tinyscale.train.trainer.train_recipe", interrupted)
    Study.create(tmp_path / "s", TINY).close()
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--trials", 1, "--workers", 1, "--quiet")
    assert code == 130 and "interrupted" in err
    with Study.open(tmp_path / "s") as study:
        assert [t.state for t in study.trials()] == ["pending"]


# ------------------------------------------------------------------ property: junk for every option
INT_JUNK = ["abc", "", " ", "1.5", "nan", "inf", "0x10", "1e3", "--", "-"]
FLOAT_JUNK = ["abc", "", " ", "nan", "inf", "-inf", "-1", "0", "1e400", "-0", "1,2", "0x1p-3x"]
PAIR_JUNK = ["1", "a,b", "nan,1", "1,nan", "2,1", "-1,1", "0,1", "1,2,3", "inf,inf", "", ",", "1e400,1e401"]
POSITIVE = ["0", "-1", "-2"]
# (command prefix, option, junk): junk none of which is a valid value for the option.
STUDY = ["study", "--data", "generated", "--out", "{tmp}/s", "--trials", "1"]
LATENCY = ["latency", "--r", "1", "--w", "1", "--d", "1", "--base-resolution", "32", "--num-classes", "10"]
OPTIONS = [
    (["inspect", "--w", "1", "--d", "1"], "--r", FLOAT_JUNK),
    (["inspect", "--r", "1", "--d", "1"], "--w", FLOAT_JUNK),
    (["inspect", "--r", "1", "--w", "1"], "--d", FLOAT_JUNK),
    (["inspect", "--r", "1", "--w", "1", "--d", "1"], "--base-resolution", INT_JUNK + POSITIVE + ["5000"]),
    (["inspect", "--r", "1", "--w", "1", "--d", "1"], "--num-classes", INT_JUNK + POSITIVE + ["1"]),
    (["inspect", "--r", "1", "--w", "1", "--d", "1"], "--rules", ["tiny", "", "TINYNET"]),
    (["scale", "--rule", "efficientnet"], "--ratio", FLOAT_JUNK + ["1e30"]),
    (["scale", "--table"], "--ratios", FLOAT_JUNK + ["1e30"]),
    (["scale", "--rule", "uniform", "--ratio", "0.5"], "--base-resolution", INT_JUNK + POSITIVE),
    (["scale", "--rule", "uniform", "--ratio", "0.5"], "--num-classes", INT_JUNK + POSITIVE + ["1"]),
    (["scale", "--ratio", "0.5"], "--rule", ["", "mobilenet"]),
    (STUDY[:5], "--trials", INT_JUNK + POSITIVE),
    (STUDY[:5], "--budget-minutes", FLOAT_JUNK),
    (STUDY, "--window", PAIR_JUNK + ["100,1000"]),
    (STUDY, "--r-range", PAIR_JUNK + ["0.01,1"]),
    (STUDY, "--d-range", PAIR_JUNK + ["0.01,100"]),
    (STUDY, "--steps", INT_JUNK + POSITIVE),
    (STUDY, "--batch-size", INT_JUNK + POSITIVE + ["1"]),
    (STUDY, "--base-resolution", INT_JUNK + POSITIVE + ["5000"]),
    (STUDY, "--num-classes", INT_JUNK + POSITIVE + ["1", "3"]),
    (STUDY, "--train-size", INT_JUNK + POSITIVE),
    (STUDY, "--val-size", INT_JUNK + POSITIVE),
    (STUDY, "--seed", INT_JUNK + ["-1", str(2**70)]),
    (STUDY, "--workers", INT_JUNK + POSITIVE + ["100000"]),
    (STUDY, "--threads", INT_JUNK + POSITIVE + ["100000"]),
    (STUDY, "--sampling", ["", "grid"]),
    (STUDY, "--rules", ["", "x"]),
    (STUDY, "--executor", ["", "slurm"]),
    (STUDY, "--address", ["auto", "ray://nowhere:10001"]),  # only with --executor ray
    (STUDY[:1] + ["--out", "{tmp}/s", "--trials", "1"], "--data", ["", "{tmp}/no-such-dataset", "/dev/null"]),
    (["fit", "{trials}", "--method", "pareto"], "--pareto-k", INT_JUNK + POSITIVE + ["3", "1000"]),
    (["fit", "{trials}"], "--seed", INT_JUNK + ["-1", str(2**70)]),
    (["fit", "{trials}"], "--method", ["", "kriging"]),
    (["recipe", "{study}"], "--ratio", FLOAT_JUNK + ["1e30"]),
    (["recipe", "{study}"], "--macs", FLOAT_JUNK),
    (["export", "{study}", "--out", "{tmp}/e"], "--ratio", FLOAT_JUNK + ["1e30"]),
    (["export", "{study}", "--ratio", "0.3"], "--out", ["", " ", "{tmp}/x.tar.bz2", "{tmp}/x.7z", "{study}/fit.json"]),
    (["export", "{study}", "--ratio", "0.3", "--out", "{tmp}/e"], "--train-steps", INT_JUNK + ["-1"]),
    (["export", "{study}", "--ratio", "0.3", "--out", "{tmp}/e"], "--seed", INT_JUNK + ["-1", str(2**70)]),
    (["export", "{study}", "--ratio", "0.3", "--out", "{tmp}/e"], "--format", ["", ",", "tflite", "onnx,x"]),
    (["demo", "--out", "{tmp}/d"], "--budget-steps", INT_JUNK + POSITIVE + ["133"]),
    (["demo", "--out", "{tmp}/d"], "--workers", INT_JUNK + POSITIVE),
    (["demo", "--out", "{tmp}/d"], "--port", INT_JUNK + POSITIVE + ["65536", "99999"]),
    (["trials", "{trials}"], "--state", ["", "done"]),
    (["compare", "{trials}"], "--ratios", ["", ",", "abc", "0", "-1", "nan", "inf", "1e30", "0.5,x"]),
    (["compare", "{trials}"], "--strategies", ["", ",", "nope", "gp,nope"]),
    (["compare", "{trials}"], "--steps", INT_JUNK + POSITIVE),
    (["compare", "{trials}"], "--batch-size", INT_JUNK + POSITIVE + ["1"]),
    (["compare", "{trials}"], "--threads", INT_JUNK + POSITIVE + ["100000"]),
    (["compare", "{trials}"], "--seeds", INT_JUNK + POSITIVE),
    (["compare", "{trials}"], "--first-seed", INT_JUNK + ["-1", "2147483647"]),
    (["compare", "{trials}"], "--workers", INT_JUNK + POSITIVE + ["100000"]),
    (["fidelity", "{trials}"], "--recipes", INT_JUNK + POSITIVE),
    (["fidelity", "{trials}"], "--factor", FLOAT_JUNK),
    (["fidelity", "{trials}"], "--replicates", INT_JUNK + ["-1"]),
    (["fidelity", "{trials}"], "--noise-trials", INT_JUNK + ["-1"]),
    (["fidelity", "{trials}"], "--workers", INT_JUNK + POSITIVE + ["100000"]),
    (["fidelity", "{trials}"], "--threads", INT_JUNK + POSITIVE + ["100000"]),
    (["app", "--study", "{tmp}"], "--port", INT_JUNK + POSITIVE + ["65536"]),
    (["app", "--study", "{tmp}", "--port", "8599"], "--host", ["999.1.1.1", "no such host.invalid", ""]),
    # Issue 28: every count a user types has an upper bound, every path is checked before any work.
    (STUDY[:5], "--trials", ["1000000000"]),
    (STUDY, "--steps", ["1000000000000"]),
    (STUDY, "--batch-size", ["100000000"]),
    (["study", "--data", "generated", "--trials", "1"], "--out", ["", " "]),
    (["compare", "{trials}"], "--seeds", ["100000000"]),
    (["compare", "{trials}"], "--steps", ["1000000000000"]),
    (["compare", "{trials}"], "--batch-size", ["100000000"]),
    (["export", "{study}", "--ratio", "0.3", "--out", "{tmp}/e"], "--train-steps", ["1000000000000"]),
    (["fidelity", "{trials}"], "--factor", ["1e12"]),
    (LATENCY, "--batch", INT_JUNK + POSITIVE + ["100000000"]),
    (LATENCY, "--repeats", INT_JUNK + POSITIVE + ["100000000000"]),
    (LATENCY, "--warmup", INT_JUNK + ["-1", "100000000000"]),
    (LATENCY, "--threads", INT_JUNK + POSITIVE + ["100000"]),
    (LATENCY, "--latency-table", ["{tmp}/missing.json", "/dev/null", "/dev/zero", "{tmp}", "{study}/fit.json"]),
    (["latency-table", "--out", "{tmp}/t.json"], "--repeats", INT_JUNK + POSITIVE + ["100000000000"]),
    (["latency-table", "--out", "{tmp}/t.json"], "--part-repeats", INT_JUNK + POSITIVE + ["100000000000"]),
    (["latency-table", "--out", "{tmp}/t.json"], "--batch", INT_JUNK + POSITIVE + ["100000000"]),
    (["latency-table", "--out", "{tmp}/t.json"], "--calibration", INT_JUNK + ["100000000000"]),
    (["latency-table"], "--out", ["", "{tmp}", "{tmp}/no-such-dir/t.json", "{study}/fit.json"]),
    (["trials", "{trials}"], "--latency-table", ["", "{tmp}/missing.json", "/dev/null", "/dev/zero", "{tmp}"]),
]


def _junk_cases() -> list[tuple[list[str], str, str]]:
    """Every (prefix, option, junk) above, plus seeded random junk for each option: printable
    noise and numbers the option cannot take (the same list on every run)."""
    rng = random.Random(14)
    cases = [(prefix, option, junk) for prefix, option, pool in OPTIONS for junk in pool]
    for prefix, option, pool in OPTIONS:
        for _ in range(3 if option != "--out" else 0):  # any printable name is a path --out may create
            cases.append((prefix, option, "".join(rng.choice("xyz!@#$%^&*()[]<>?~`'\"|") for _ in range(rng.randint(1, 12)))))
        cases.append((prefix, option, rng.choice(pool)))
    return cases


def test_junk_for_every_option_is_one_line_and_no_traceback(capsys, tmp_path, study_with_fit, study_with_trials,
                                                            monkeypatch):
    def not_reached(*args, **kwargs):
        raise AssertionError("a junk value passed validation and reached training")

    from tinyscale.study.executors import ProcessExecutor, SequentialExecutor

    monkeypatch.setattr(Study, "start_trial", not_reached)
    monkeypatch.setattr(SequentialExecutor, "submit", not_reached)
    monkeypatch.setattr(ProcessExecutor, "submit", not_reached)
    monkeypatch.setattr("tinyscale.export.from_study.build_export", not_reached)
    monkeypatch.setattr("tinyscale.commands.app.subprocess.Popen", not_reached)
    from tinyscale.latency import Measurer

    monkeypatch.setattr(Measurer, "measure_recipe", not_reached)
    monkeypatch.setattr(Measurer, "measure_part", not_reached)
    monkeypatch.setattr("tinyscale.latency.build_table", not_reached)
    cases = _junk_cases()
    assert len(cases) > 380
    for prefix, option, junk in cases:
        argv = [a.format(tmp=tmp_path, study=study_with_fit, trials=study_with_trials) for a in prefix + [option, junk]]
        code, _, err = cli(capsys, *argv)
        assert code not in (0, None), argv
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith(f"tinyscale {argv[0]}: error:"), (argv, err)
