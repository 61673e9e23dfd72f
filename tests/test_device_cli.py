"""One meaning per flag: ``--device`` is where runs train (study, compare, fidelity, export
--train-steps), ``--latency-table FILE`` the latency table; ``--device FILE`` still read as a
table for one release, with a deprecation line. Device errors are one line, before any work."""

from __future__ import annotations

import json
import random

import pytest
import torch

from _cli import cli
from _latency_fixtures import small_grid_table
from tinyscale.study.store import Study

DEPRECATED = "--device FILE is deprecated: use --latency-table FILE"
TINY = ["--data", "generated", "--base-resolution", "16", "--r-range", "0.5,1.0", "--steps", "4", "--batch-size", "16",
        "--train-size", "128", "--val-size", "32", "--workers", "1", "--threads", "1", "--quiet"]


@pytest.fixture
def no_gpu(monkeypatch):
    """Torch reports no CUDA (as on this machine; also where a GPU is present)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


@pytest.fixture
def nothing_runs(monkeypatch):
    """Any data load, training or study start fails the test: errors must come first."""
    def not_reached(*args, **kwargs):
        raise AssertionError("reached work that a bad option should have stopped")

    from tinyscale.study.executors import ProcessExecutor, SequentialExecutor

    monkeypatch.setattr("tinyscale.data.datasets.load_data", not_reached)
    monkeypatch.setattr(SequentialExecutor, "submit", not_reached)
    monkeypatch.setattr(ProcessExecutor, "submit", not_reached)
    monkeypatch.setattr(Study, "create", not_reached)
    monkeypatch.setattr("tinyscale.fit.solve.RecipeSolver.load", not_reached)


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    """A (fake) latency table of another machine: commands predict from it and measure nothing."""
    path = small_grid_table(base_resolution=16).save(tmp_path_factory.mktemp("table") / "edge.json")
    data = json.loads(path.read_text())
    data["profile"]["cpu"] = "Some Edge CPU"
    path.write_text(json.dumps(data))
    return path


def _one_line(code, err, expected_code, *parts):
    assert code == expected_code, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


COMMANDS = [
    ["study", "--data", "generated", "--out", "{tmp}/s", "--trials", "1"],
    ["compare", "{tmp}/no-study"],
    ["fidelity", "{tmp}/no-study"],
    ["export", "{tmp}/no-study", "--ratio", "0.3", "--out", "{tmp}/e", "--train-steps", "2"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_is_one_line_before_any_work(capsys, tmp_path, no_gpu, nothing_runs, command, device):
    argv = [a.format(tmp=tmp_path) for a in command]
    code, out, err = cli(capsys, *argv, "--device", device)
    _one_line(code, err, 2, f"tinyscale {argv[0]}: error: --device {device}: torch sees no CUDA GPU here",
              "CUDA build of torch")
    assert out == "" and not (tmp_path / "s").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("command", COMMANDS[:3], ids=lambda c: c[0])
def test_a_gpu_that_does_not_exist_is_one_line(capsys, tmp_path, monkeypatch, nothing_runs, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    argv = [a.format(tmp=tmp_path) for a in command]
    code, _, err = cli(capsys, *argv, "--gpus", "0,3")
    _one_line(code, err, 2, "--gpus 0,3: there is no GPU 3; torch sees 2 (0,1)")
    code, _, err = cli(capsys, *argv, "--device", "cuda:2")
    _one_line(code, err, 2, "--device cuda:2: there is no GPU 2; torch sees 2")
    code, _, err = cli(capsys, *argv, "--device", "cuda", "--workers", "3")
    _one_line(code, err, 2, "--workers 3: on GPUs there is one worker per GPU")


JUNK = {
    "--device": ["", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "mps", "tpu:0"],
    "--gpus": ["", "x", "0,x", "0,,1", "-1", "0,0", "1.5"],
    "--trials-per-gpu": ["", "x", "0", "-2", "1.5", "65"],
    "--precision": ["", "fp8", "FP32", "half"],
}


def test_junk_for_the_device_options_is_one_line(capsys, tmp_path, no_gpu, nothing_runs):
    rng = random.Random(26)
    cases = [(option, value) for option, values in JUNK.items() for value in values]
    cases += [(option, "".join(rng.choice("xyz!@#$%^&*()[]<>?~`'\"|:") for _ in range(rng.randint(1, 10))))
              for option in JUNK for _ in range(3)]
    for option, value in cases:
        commands = COMMANDS if option == "--device" else COMMANDS[:1] if option == "--precision" else COMMANDS[:3]
        for command in commands:
            argv = [a.format(tmp=tmp_path) for a in command] + [option, value]
            code, out, err = cli(capsys, *argv)
            assert code == 2, (argv, err)
            assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
            assert err.startswith(f"tinyscale {argv[0]}: error:"), (argv, err)


def test_device_goes_with_train_steps_in_export(capsys, tmp_path, nothing_runs):
    code, _, err = cli(capsys, "export", tmp_path, "--ratio", "0.3", "--out", tmp_path / "e", "--device", "cpu")
    _one_line(code, err, 2, "--device goes with --train-steps")


@pytest.mark.parametrize("argv", [
    ["latency", "--r", "0.5", "--w", "0.5", "--d", "0.5", "--base-resolution", "16", "--json"],
    ["scale", "--rule", "efficientnet", "--latency-ms", "10", "--base-resolution", "16", "--json"],
], ids=["latency", "scale"])
def test_a_device_file_is_still_read_as_a_table_with_a_deprecation_line(capsys, table_file, argv):
    code, out, err = cli(capsys, *argv, "--latency-table", table_file)
    assert code == 0 and err == "", err
    new = json.loads(out)
    code, out, err = cli(capsys, *argv, "--device", table_file)
    assert code == 0
    assert err == f"tinyscale {argv[0]}: note: {DEPRECATED}\n"
    assert json.loads(out) == new and new["device"]["cpu"] == "Some Edge CPU"


def test_the_old_and_the_new_name_together_is_an_error(capsys, table_file, tmp_path):
    code, _, err = cli(capsys, "latency", "--r", "1", "--w", "1", "--d", "1", "--device", table_file,
                       "--latency-table", table_file)
    _one_line(code, err, 2, "the old name of --latency-table")
    code, _, err = cli(capsys, "study", "--out", tmp_path / "s", "--device", table_file, "--latency-table",
                       table_file)
    _one_line(code, err, 2, "the old name of --latency-table")


def test_trials_reads_a_device_file_as_its_table(capsys, synthetic_study, table_file):
    code, out, err = cli(capsys, "trials", synthetic_study, "--device", table_file, "--json")
    assert code == 0 and err == f"tinyscale trials: note: {DEPRECATED}\n"
    data = json.loads(out)
    assert data["device"]["cpu"] and all("latency_ms" in t for t in data["trials"])
    # Not a table: the table's own error, after the note.
    code, _, err = cli(capsys, "trials", synthetic_study, "--device", synthetic_study / "config.json")
    assert code == 2 and err.splitlines()[0] == f"tinyscale trials: note: {DEPRECATED}"


def test_app_offers_every_table_given_under_either_name(capsys, monkeypatch, table_file, tmp_path):
    other = tmp_path / "other.json"
    other.write_bytes(table_file.read_bytes())
    seen = {}
    monkeypatch.setattr("tinyscale.commands.app.launch", lambda study, **kw: seen.update(kw) or 0)
    code, _, err = cli(capsys, "app", "--study", tmp_path, "--latency-table", other, "--device", table_file)
    assert code == 0 and err == f"tinyscale app: note: {DEPRECATED}\n"
    assert seen["devices"] == [str(other), str(table_file)]
    code, _, err = cli(capsys, "app", "--study", tmp_path, "--latency-table", other)
    assert code == 0 and err == "" and seen["devices"] == [str(other)]


def test_study_on_the_cpu_keeps_a_device_file_as_its_table(capsys, tmp_path, table_file):
    # The same tiny study three ways: --device cpu, the default (auto: the CPU here) with the
    # old --device FILE, and --latency-table. Same trials, bit for bit; the table kept twice.
    runs = {"cpu": ["--device", "cpu"], "legacy": ["--device", table_file], "table": ["--latency-table", table_file]}
    results = {}
    for name, extra in runs.items():
        out = tmp_path / name
        code, _, err = cli(capsys, "study", *TINY, "--out", out, "--trials", "2", *extra)
        assert code == 0, err
        assert (DEPRECATED in err) == (name == "legacy")
        assert (out / "latency.json").exists() == (name != "cpu")
        with Study.open(out) as study:
            results[name] = [(t.recipe, t.accuracy, t.loss) for t in study.trials()]
    assert results["cpu"] == results["legacy"] == results["table"]
    assert all(acc is not None for _, acc, _ in results["cpu"])


def test_precision_is_fixed_when_the_study_is_created(capsys, tmp_path):
    out = tmp_path / "bf16"
    code, _, err = cli(capsys, "study", *TINY, "--out", out, "--trials", "1", "--precision", "bf16", "--device", "cpu")
    assert code == 0, err
    with Study.open(out) as study:
        assert study.config.extra == {"precision": "bf16"}
        assert study.trials()[0].state == "completed"
    code, _, err = cli(capsys, "study", "--resume", out, "--trials", "1", "--precision", "fp32")
    _one_line(code, err, 2, "the study trains in bf16; resume it with --precision bf16")
    code, _, err = cli(capsys, "study", "--resume", out, "--trials", "1", "--precision", "bf16", "--quiet")
    assert code == 0, err
    # fp32, the default, stores no setting: the study's config is what it was before --precision.
    code, _, err = cli(capsys, "study", *TINY, "--out", tmp_path / "fp32", "--trials", "1", "--precision", "fp32")
    assert code == 0, err
    with Study.open(tmp_path / "fp32") as study:
        assert study.config.extra == {}
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "fp32", "--trials", "1", "--precision", "bf16")
    _one_line(code, err, 2, "the study trains in fp32")
