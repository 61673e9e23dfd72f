"""Issue 28: files from elsewhere are hostile, budgets are bounded, and every failure is one line.

Each test reproduces one item of the issue (its number in the comment after the name): a
crafted or damaged file, or an absurd count, meets the reader it targets. The last test is the
property behind them: every stored file kind, under a seeded set of corruptions, gives one line,
exit status 2, nothing changed outside the study directory, and a bounded peak memory.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from _cli import cli
from _fit_fixtures import fitted, synthetic_trials, write_study
from _latency_fixtures import fake_table
from tinyscale.export import MANIFEST, WEIGHTS, archive_bytes, build_export, load_exported
from tinyscale.space.recipe import Recipe
from tinyscale.study.store import CONFIG_FILE, TRIALS_FILE, Study
from tinyscale.study.trial import StudyConfig

REPO = Path(__file__).resolve().parents[1]
RECIPE = Recipe(r=0.75, w=0.6, d=0.7, base_resolution=32, num_classes=10)
TINY = StudyConfig(data="generated", base_resolution=32, num_classes=10, window=(0.05, 0.3), steps=2, batch_size=8,
                   train_size=64, val_size=32, extra={"bn_calibration_images": 16})
PRECIOUS = b"someone's file outside the study\n"


def assert_one_line(code, err: str, expected_code: int, *words: str) -> None:
    assert code == expected_code, (code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def not_reached(*args, **kwargs):
    raise AssertionError("an input that should have been refused reached the work")


@pytest.fixture
def victim(tmp_path) -> Path:
    """A file outside every study directory, which nothing may change."""
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory) -> Path:
    """12 completed trials and a (Pareto) fit; tests copy it before changing it."""
    study = write_study(tmp_path_factory.mktemp("fitted") / "study", synthetic_trials(seed=0)[:12])
    fitted(1).save(study)
    return study


@pytest.fixture
def study_dir(fitted_dir, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(fitted_dir, tmp_path / "study"))


# ------------------------------------------------------------------ 1: nothing written through a link
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_planted_study_lock_is_not_written_through(capsys, tmp_path, victim, monkeypatch, link):  # 1
    monkeypatch.setattr(Study, "start_trial", not_reached)
    Study.create(tmp_path / "s", TINY).close()
    lock = tmp_path / "s" / "study.lock"
    lock.unlink(missing_ok=True)
    os.symlink(victim, lock) if link == "symlink" else os.link(victim, lock)
    code, _, err = cli(capsys, "study", "--resume", tmp_path / "s", "--trials", 1, "--workers", 1, "--quiet")
    assert_one_line(code, err, 2, "study.lock")
    assert victim.read_bytes() == PRECIOUS


def test_temporary_files_are_created_anew(tmp_path, victim):  # 1
    from tinyscale.storage import write_text_atomically

    target = tmp_path / "fit.json"
    # The temporary names of earlier versions, planted as links to someone's file.
    os.symlink(victim, tmp_path / f".fit.json.tmp-{os.getpid()}")
    write_text_atomically(target, "new\n")
    assert victim.read_bytes() == PRECIOUS
    assert not target.is_symlink() and target.read_text() == "new\n"


def test_a_study_database_that_is_a_link_is_refused(capsys, tmp_path, victim):  # 1
    Study.create(tmp_path / "real", TINY).close()
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / CONFIG_FILE).write_bytes((tmp_path / "real" / CONFIG_FILE).read_bytes())
    os.symlink(tmp_path / "real" / TRIALS_FILE, tmp_path / "s" / TRIALS_FILE)
    before = sorted(p.name for p in (tmp_path / "real").iterdir())
    code, _, err = cli(capsys, "trials", tmp_path / "s")
    assert_one_line(code, err, 2, "symbolic link")
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == before  # no -wal or -shm made there


def test_a_comparison_folder_that_is_a_link_is_refused(capsys, study_dir, tmp_path, monkeypatch):  # 1
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, study_dir / "compare")
    monkeypatch.setattr("tinyscale.study.executors.SequentialExecutor.submit", not_reached)
    code, _, err = cli(capsys, "compare", study_dir, "--ratios", "0.25", "--strategies", "efficientnet", "--seeds", 1,
                       "--steps", 2, "--workers", 1, "--no-progress")
    assert_one_line(code, err, 2, "symbolic link")
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------ 2, 3: exports read within bounds
def _manifest_for(recipe: Recipe, weights_of: Recipe = RECIPE) -> dict:
    """The manifest of an export of ``weights_of``, rewritten to claim ``recipe`` consistently."""
    manifest = json.loads(build_export(weights_of, formats="safetensors").files[MANIFEST])
    manifest["recipe"] = recipe.to_dict()
    manifest.update(r=recipe.r, w=recipe.w, d=recipe.d, rules=recipe.rules, resolution=recipe.resolution)
    manifest["input"]["shape"] = ["batch", 3, recipe.resolution, recipe.resolution]
    return manifest


def test_a_crafted_recipe_cannot_make_load_build_a_huge_network(tmp_path, monkeypatch):  # 2
    huge = Recipe(r=1.0, w=8.0, d=8.0, base_resolution=32, num_classes=1_000_000)  # 12.6 billion parameters
    bundle = build_export(RECIPE, formats="safetensors")
    out = tmp_path / "e"
    out.mkdir()
    (out / WEIGHTS).write_bytes(bundle.files[WEIGHTS])
    (out / MANIFEST).write_text(json.dumps(_manifest_for(huge)))
    monkeypatch.setattr("tinyscale.space.model.build_model", not_reached)
    with pytest.raises(ValueError, match="do not match"):
        load_exported(out)


def test_only_the_files_loading_needs_are_read(tmp_path):  # 3
    bundle = build_export(RECIPE, formats="safetensors")
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in bundle.files.items():
            zf.writestr(name, data)
        with zf.open("junk.bin", "w") as fh:  # 256 MiB of zeros, about 256 KB deflated
            for _ in range(256):
                fh.write(bytes(1 << 20))
    tracemalloc.start()
    try:
        assert load_exported(path).recipe == RECIPE
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"{peak / 2**20:.0f} MiB allocated"


@pytest.mark.parametrize("kind", [".zip", ".tar.gz", "dir"])
def test_an_oversized_weights_file_is_refused_before_it_is_read(tmp_path, monkeypatch, kind):  # 3
    import tinyscale.export.load as load

    bundle = build_export(RECIPE, formats="safetensors")
    monkeypatch.setitem(load.MEMBER_LIMITS, WEIGHTS, len(bundle.files[WEIGHTS]) - 1)
    if kind == "dir":
        path = tmp_path / "e"
        path.mkdir()
        for name, data in bundle.files.items():
            (path / name).write_bytes(data)
    else:
        path = tmp_path / f"e{kind}"
        path.write_bytes(archive_bytes(bundle, kind))
    with pytest.raises(ValueError, match="at most|larger than"):
        load_exported(path)


def _archive(kind: str, members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    if kind == ".zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members:
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind", [".zip", ".tar.gz"])
def test_a_member_deeper_down_never_stands_in_for_the_export(tmp_path, kind):  # 11
    files = build_export(RECIPE, formats="safetensors").files
    forged = json.dumps(_manifest_for(Recipe(0.5, 0.5, 0.5, base_resolution=32, num_classes=10))).encode()
    path = tmp_path / f"x{kind}"
    path.write_bytes(_archive(kind, [(MANIFEST, files[MANIFEST]), (WEIGHTS, files[WEIGHTS]), (f"x/{MANIFEST}", forged)]))
    assert load_exported(path).recipe == RECIPE
    # An archive of one folder (`zip -r x.zip export/`) is that folder's export.
    path.write_bytes(_archive(kind, [(f"export/{MANIFEST}", files[MANIFEST]), (f"export/{WEIGHTS}", files[WEIGHTS])]))
    assert load_exported(path).recipe == RECIPE
    path.write_bytes(_archive(kind, [(MANIFEST, files[MANIFEST]), (WEIGHTS, files[WEIGHTS]), (f"./{MANIFEST}", forged)]))
    with pytest.raises(ValueError, match="twice"):
        load_exported(path)


@pytest.mark.parametrize("change", ["deep", "format-1.0", "format-true"])
def test_crafted_manifests_are_value_errors(tmp_path, change):  # 11, 13
    files = build_export(RECIPE, formats="safetensors").files
    manifest = json.loads(files[MANIFEST])
    if change == "deep":
        text = "[" * 100_000 + "]" * 100_000
    else:
        manifest["format"] = 1.0 if change == "format-1.0" else True
        text = json.dumps(manifest)
    out = tmp_path / "e"
    out.mkdir()
    (out / WEIGHTS).write_bytes(files[WEIGHTS])
    (out / MANIFEST).write_text(text)
    with pytest.raises(ValueError, match="recipe.json"):
        load_exported(out)


# ------------------------------------------------------------------ 4: images are sized before decoding
def test_an_image_too_large_is_skipped_before_it_is_decoded(tmp_path):  # 4
    from tinyscale.data.datasets import load_data

    for cls, color in (("cat", 40), ("dog", 200)):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (10, 10), color).save(tmp_path / "train" / cls / f"{i}.png")
    Image.new("L", (8200, 8200), 90).save(tmp_path / "train" / "cat" / "huge.png")  # 67 MP, a few KB on disk
    with pytest.warns(UserWarning, match=r"1 unreadable image.*huge\.png.*pixels"):
        data = load_data(str(tmp_path), decode_size=8)
    assert len(data.train_images) + len(data.val_images) == 6


# ------------------------------------------------------------------ 5, 6: every count and file has a bound
LATENCY = ["latency", "--r", "1", "--w", "1", "--d", "1", "--base-resolution", "32", "--num-classes", "10"]


@pytest.mark.parametrize("argv, words", [
    (LATENCY + ["--batch", "100000000"], ("batch", "4,096")),
    (LATENCY + ["--repeats", "100000000000"], ("repeats", "100,000")),
    (LATENCY + ["--warmup", "100000000000"], ("warmup", "100,000")),
    (["latency-table", "--out", "{tmp}/t.json", "--part-repeats", "100000000000"], ("part repeats", "100,000")),
    (["latency-table", "--out", "{tmp}/t.json", "--batch", "100000000"], ("batch", "4,096")),
    (["compare", "{study}", "--seeds", "100000000"], ("--seeds", "100")),
    (["compare", "{study}", "--first-seed", "2147483647"], ("--first-seed", "2,147,483,645")),
    (["compare", "{study}", "--steps", "1000000000000"], ("--steps", "10,000,000")),
    (["study", "--data", "generated", "--out", "{tmp}/s", "--trials", "1000000000"], ("--trials", "100,000")),
    (["study", "--data", "generated", "--out", "{tmp}/s", "--trials", "1", "--steps", "1000000000000"],
     ("--steps", "10,000,000")),
    (["study", "--data", "generated", "--out", "{tmp}/s", "--trials", "1", "--batch-size", "100000000"],
     ("--batch-size", "4,096")),
    (["export", "{study}", "--ratio", "0.3", "--out", "{tmp}/e", "--train-steps", "1000000000000"],
     ("--train-steps", "10,000,000")),
    (["fidelity", "{study}", "--factor", "1e12"], ("--factor", "10,000,000")),
])
def test_counts_have_upper_bounds_named_in_the_message(capsys, tmp_path, study_dir, monkeypatch, argv, words):  # 5
    from tinyscale.latency import Measurer

    for target in (Measurer.measure_recipe, Measurer.measure_part):
        monkeypatch.setattr(Measurer, target.__name__, not_reached)
    monkeypatch.setattr("tinyscale.latency.build_table", not_reached)
    monkeypatch.setattr(Study, "start_trial", not_reached)
    monkeypatch.setattr("tinyscale.study.executors.SequentialExecutor.submit", not_reached)
    monkeypatch.setattr("tinyscale.study.executors.ProcessExecutor.submit", not_reached)
    monkeypatch.setattr("tinyscale.export.from_study.build_export", not_reached)
    code, _, err = cli(capsys, *[a.format(tmp=tmp_path, study=study_dir) for a in argv])
    assert_one_line(code, err, 2, *words)
    assert not (tmp_path / "s").exists() and not (tmp_path / "t.json").exists()


def _table_file(path: Path, change=None, elsewhere: bool = True) -> Path:
    """A (fake) device table, measured on another machine unless ``elsewhere`` is False."""
    table = fake_table([Recipe(0.5, 0.5, 1.0, base_resolution=32, num_classes=10)])
    data = table.to_dict()
    if elsewhere:
        data["profile"]["cpu"] = "a device far away"
    if change is not None:
        change(data)
    path.write_text(json.dumps(data))
    return path


def test_a_table_whose_batch_is_absurd_is_refused(tmp_path):  # 5
    from tinyscale.latency import LatencyTable

    path = _table_file(tmp_path / "t.json", lambda d: d["profile"].update(batch=10**9))
    with pytest.raises(ValueError, match="batch"):
        LatencyTable.load(path)


def _run_limited(code: str, memory_gib: float = 2.0, timeout: float = 60) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter with its address space limited, so that a reader without a
    bound fails fast (MemoryError) instead of taking the machine."""
    limit = int(memory_gib * 2**30)
    preamble = f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    return subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("device", ["/dev/zero", "fifo", "missing"])
def test_a_device_path_that_is_no_table_is_one_line(tmp_path, device):  # 6, 14
    if device == "fifo":
        device = tmp_path / "fifo"
        os.mkfifo(device)  # opening it to read would wait for a writer forever
    elif device == "missing":
        device = tmp_path / "no-such.json"
    done = _run_limited(f"""
        import sys
        from tinyscale.cli import main
        sys.exit(main(["trials", {str(tmp_path)!r}, "--latency-table", {str(device)!r}]))
    """, timeout=30)
    assert_one_line(done.returncode, done.stderr, 2, "tinyscale trials: error:", str(device))


# ------------------------------------------------------------------ 7: latency-table --out
@pytest.fixture
def quick_table_build(monkeypatch):
    built = []

    def build(*args, **kwargs):
        built.append(kwargs)
        return fake_table([Recipe(0.5, 0.5, 1.0, base_resolution=32, num_classes=10)])

    monkeypatch.setattr("tinyscale.latency.build_table", build)
    return built


def test_latency_table_out_is_checked_before_measuring(capsys, tmp_path, quick_table_build):  # 7
    existing = tmp_path / CONFIG_FILE
    existing.write_text('{"a study": "config"}')
    code, _, err = cli(capsys, "latency-table", "--out", existing)
    assert_one_line(code, err, 2, "already exists", "--force")
    assert existing.read_text() == '{"a study": "config"}'
    for out, words in ((tmp_path / "no-such-dir" / "t.json", ("does not exist",)), (tmp_path, ("directory",)),
                       ("", ("empty",))):
        code, _, err = cli(capsys, "latency-table", "--out", out)
        assert_one_line(code, err, 2, *words)
    assert quick_table_build == []  # nothing was measured
    code, out, err = cli(capsys, "latency-table", "--out", existing, "--force")
    assert code == 0, err
    assert json.loads(existing.read_text())["format"] == "tinyscale-latency-table"


def test_a_full_disk_names_the_file(capsys, tmp_path, quick_table_build, monkeypatch):  # 14
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("tinyscale.storage.os.fsync", no_space)
    code, _, err = cli(capsys, "latency-table", "--out", tmp_path / "t.json")
    assert_one_line(code, err, 1, "No space left on device", str(tmp_path / "t.json"))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 8: tampered numbers
@pytest.mark.parametrize("change", [
    lambda d: d["calibration"].update(slope=float("nan")),
    lambda d: d["calibration"].update(slope=-1.0),
    lambda d: d["calibration"].update(slope=1e308),
    lambda d: d["calibration"].update(intercept_us=-1e9),
    lambda d: d["calibration"].update(per_part_us="5"),
    lambda d: d["calibration"].update(points=[{"recipe": Recipe(0.5, 0.5, 1.0).to_dict(), "measured_us": float("nan"),
                                               "summed_us": 10.0, "parts": 3}] * 8, kind="gp"),
    lambda d: d.update(format_version=1.0),
    lambda d: d.update(format_version=True),
], ids=["slope-nan", "slope-negative", "slope-huge", "intercept-negative", "per-part-text", "gp-point-nan",
        "version-1.0", "version-true"])
def test_tampered_latency_tables_are_refused(capsys, tmp_path, change):  # 8, 11, 13
    path = _table_file(tmp_path / "t.json", change)
    code, out, err = cli(capsys, *LATENCY, "--latency-table", path, "--json")
    assert_one_line(code, err, 2, str(path))
    assert out == ""


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def _fidelity(verdict: str = "untrustworthy"):
    """A real check's result (pure numbers, no training): rank fidelity 0.3 (untrustworthy) or 1.0."""
    import numpy as np

    from tinyscale.evaluate.fidelity import summarize

    rng = np.random.default_rng(0)
    cs = np.geomspace(0.05, 1.0, 12)
    brief = 0.8 + 0.03 * np.log2(cs) + rng.normal(0, 0.004, 12)
    long = brief + 0.05 if verdict == "trustworthy" else rng.permutation(brief) + 0.05
    groups = {i: [brief[i], brief[i] + 0.003, brief[i] - 0.002] for i in (0, 5, 11)}
    return summarize(dict(enumerate(brief)), dict(enumerate(long)), groups, dict(enumerate(cs)))


@pytest.mark.parametrize("change, why", [
    (lambda d: d.update(verdict="trustworthy"), "verdict"),
    (lambda d: d.update(rho=-0.4), "rho"),
    (lambda d: d.update(rho=float("nan")), "rho"),
    (lambda d: d.update(sigma=1e-9), "sigma"),
    (lambda d: d.update(reasons=[]), "reasons"),
    (lambda d: d.update(format=1.0), "format"),
    (lambda d: d["signal"].update(slope="steep"), "slope"),
])
def test_a_forged_or_damaged_fidelity_result_is_not_shown(tmp_path, change, why):  # 8, 11, 13
    from tinyscale.evaluate.fidelity import FIDELITY_FILE, describe_stored, load_fidelity, save_fidelity

    save_fidelity(_fidelity(), tmp_path)
    data = json.loads((tmp_path / FIDELITY_FILE).read_text())
    assert data["verdict"] == "untrustworthy" and data["rho"] < 0.5
    change(data)
    (tmp_path / FIDELITY_FILE).write_text(json.dumps(data))
    with pytest.raises(ValueError, match=why):
        load_fidelity(tmp_path)
    assert describe_stored(tmp_path).startswith("fidelity   unreadable: ")


@pytest.mark.parametrize("change", [lambda d: d.update(rho=float("nan")), lambda d: d.update(reasons=[])],
                         ids=["rho-nan", "no-reasons"])
def test_fit_reads_a_damaged_fidelity_result_before_it_writes(capsys, study_dir, change):  # 8, 11, 13
    from tinyscale.evaluate.fidelity import FIDELITY_FILE, save_fidelity

    save_fidelity(_fidelity(), study_dir)
    data = json.loads((study_dir / FIDELITY_FILE).read_text())
    change(data)
    (study_dir / FIDELITY_FILE).write_text(json.dumps(data))
    code, out, err = cli(capsys, "fit", study_dir, "--method", "pareto", "--json")
    assert code == 0 and "Traceback" not in err, err
    assert _strict_json(out)["fidelity"] is None
    before = (study_dir / "fit.json").read_bytes()
    code, _, err = cli(capsys, "fit", study_dir, "--noise", "measured")  # needs the damaged file: refused first
    assert_one_line(code, err, 2, "unreadable")
    assert (study_dir / "fit.json").read_bytes() == before


@pytest.mark.parametrize("key", ["raw_lengthscale", "raw_noise"])
def test_a_fit_with_a_nan_hyperparameter_is_one_line(capsys, study_dir, key):  # 13
    fit = json.loads((study_dir / "fit.json").read_text())
    name = next(k for k in fit["r_state"] if k.endswith(key))
    fit["r_state"][name] = [[float("nan")]] if key == "raw_lengthscale" else [float("nan")]
    (study_dir / "fit.json").write_text(json.dumps(fit))
    code, out, err = cli(capsys, "recipe", study_dir, "--ratio", "0.3")
    assert_one_line(code, err, 2, "fit.json")


def test_a_fit_of_another_format_spelled_as_a_float_is_refused(capsys, study_dir):  # 11
    fit = json.loads((study_dir / "fit.json").read_text())
    fit["format"] = float(fit["format"])
    (study_dir / "fit.json").write_text(json.dumps(fit))
    code, _, err = cli(capsys, "recipe", study_dir, "--ratio", "0.3")
    assert_one_line(code, err, 2, "format")


# ------------------------------------------------------------------ 9, 12: studies left behind
def test_an_empty_study_directory_is_refused(capsys, tmp_path, monkeypatch):  # 9
    monkeypatch.setattr(Study, "start_trial", not_reached)
    monkeypatch.chdir(tmp_path)
    for option in ("--out", "--resume"):
        code, _, err = cli(capsys, "study", "--data", "generated", option, "", "--trials", 1, "--quiet")
        assert_one_line(code, err, 2, "empty")
    assert list(tmp_path.iterdir()) == []


def test_a_window_no_network_fits_leaves_no_study_behind(capsys, tmp_path):  # 12
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", tmp_path / "s", "--trials", 1,
                       "--window", "0.05,0.05", "--workers", 1, "--quiet")
    assert code == 2 and "Traceback" not in err and "no trial of the study completed" in err, err
    assert not (tmp_path / "s").exists()
    (tmp_path / "mine").mkdir()  # a directory the user made stays, empty as it was
    code, _, err = cli(capsys, "study", "--data", "generated", "--out", tmp_path / "mine", "--trials", 1,
                       "--window", "0.05,0.05", "--workers", 1, "--quiet")
    assert code == 2 and list((tmp_path / "mine").iterdir()) == []


def test_a_second_fidelity_check_is_refused_naming_the_holder(capsys, study_dir, monkeypatch):  # 12
    monkeypatch.setattr("tinyscale.study.executors.SequentialExecutor.submit", not_reached)
    (study_dir / "fidelity").mkdir()
    with open(study_dir / "fidelity" / "fidelity.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on elsewhere\n")
        held.flush()
        code, _, err = cli(capsys, "fidelity", study_dir, "--workers", 1, "--no-progress")
    assert_one_line(code, err, 2, "pid 4242 on elsewhere")


# ------------------------------------------------------------------ 10, 13: comparison stores
def _compare(capsys, study, *extra):
    return cli(capsys, "compare", study, "--ratios", "0.25", "--strategies", "efficientnet,uniform", "--seeds", 1,
               "--steps", 2, "--batch-size", 8, "--workers", 1, "--threads", 1, "--no-progress", *extra)


def test_a_comparison_where_every_run_failed_exits_non_zero(capsys, study_dir, monkeypatch):  # 10
    def broken(*args, **kwargs):
        raise RuntimeError("the trainer broke")

    monkeypatch.setattr("tinyscale.train.trainer.train_recipe", broken)
    code, out, err = _compare(capsys, study_dir)
    assert_one_line(code, err, 2, "no run of the comparison gave an accuracy", "the trainer broke")


@pytest.mark.parametrize("sql", [
    "UPDATE cells SET state = 'weird'",
    "UPDATE cells SET accuracy = NULL",
    "UPDATE cells SET accuracy = 'abc'",
    "UPDATE cells SET accuracy = 1e308",
    "UPDATE meta SET value = '[1, 2]' WHERE key = 'budget'",
    "UPDATE recipes SET recipe = '[[[[' WHERE strategy = 'uniform'",
], ids=["state", "null", "text", "huge", "budget", "recipe"])
def test_damaged_comparison_stores_are_one_line(capsys, study_dir, monkeypatch, sql):  # 10, 13
    from tinyscale.evaluate.compare import load_comparison

    _store_with_cells(capsys, study_dir, monkeypatch)
    with sqlite3.connect(study_dir / "compare" / "compare.sqlite") as conn:
        conn.execute(sql)
    with pytest.raises(ValueError, match="compare.sqlite"):  # what the app reads
        load_comparison(study_dir)
    if "recipes" not in sql:  # (the command rebuilds every recipe row before it reads the store)
        code, out, err = _compare(capsys, study_dir)
        assert_one_line(code, err, 2, "compare.sqlite")


def _store_with_cells(capsys, study_dir, monkeypatch):
    """Run the comparison once with a trainer that completes every cell at once."""
    from types import SimpleNamespace

    def instant(*args, **kwargs):
        return SimpleNamespace(accuracy=0.5, loss=1.0, steps=2, images_seen=16, train_seconds=0.1,
                               eval_seconds=0.01, images_per_second=100.0, reason=None)

    monkeypatch.setattr("tinyscale.train.trainer.train_recipe", instant)
    code, _, err = _compare(capsys, study_dir)
    assert code == 0, err
    monkeypatch.setattr("tinyscale.train.trainer.train_recipe", not_reached)


# ------------------------------------------------------------------ 14: the machine's faults exit 1
def test_a_study_database_the_machine_cannot_read_exits_1(capsys, study_dir, monkeypatch):  # 14
    def disk_io(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("tinyscale.study.database.upgrade", disk_io)
    for command in ("trials", "fit"):
        code, out, err = cli(capsys, command, study_dir)
        assert_one_line(code, err, 1, "disk I/O error", "disk space and permissions")
        assert out == ""


def test_a_result_store_the_machine_cannot_read_is_not_called_damaged(capsys, study_dir, monkeypatch):  # 14
    def disk_io(conn):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr("tinyscale.evaluate.compare.store._stored_schema", disk_io)
    code, _, err = _compare(capsys, study_dir)
    assert_one_line(code, err, 1, "disk I/O error", "compare.sqlite")
    assert "--restart" not in err


def test_a_full_disk_still_reads_and_refuses_to_write_in_one_line(fitted_dir, tmp_path):  # 14
    import shutil

    full = tmp_path / "full"
    full.mkdir()
    script = tmp_path / "probe.py"
    study = full / "s"
    script.write_text(
        "import contextlib, io, sys\nfrom tinyscale.cli import main\n"
        f"argvs = [['trials', {str(study)!r}], ['recipe', {str(study)!r}, '--ratio', '0.3'],\n"
        f"         ['fit', {str(study)!r}, '--method', 'pareto']]\n"
        "codes = []\n"
        "for argv in argvs:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        codes.append(main(argv))\n"
        "print('codes', codes)\n"
    )
    mount = f"mount -t tmpfs -o size=2M tmpfs {full}"
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "sh", "-c", mount]).returncode != 0:
        pytest.skip("needs root and unshare for a small tmpfs")
    fill = f"cp -r {fitted_dir} {study} && (dd if=/dev/zero of={full}/fill bs=4k 2>/dev/null || true)"
    done = subprocess.run(["unshare", "-m", "sh", "-c", f"{mount} && {fill} && {sys.executable} {script}"],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          timeout=300)
    assert "codes [0, 0, 1]" in done.stdout, (done.stdout, done.stderr)
    assert_one_line(1, done.stderr, 1, "tinyscale fit: error: No space left on device", str(study / "fit.json"))


# ------------------------------------------------------------------ 15: warnings are one plain line
def test_a_rebuilt_config_is_one_plain_line(capsys, study_dir):  # 15
    (study_dir / CONFIG_FILE).unlink()
    code, out, err = cli(capsys, "trials", study_dir)
    assert code == 0
    assert err.splitlines() == [f"tinyscale trials: note: {study_dir / CONFIG_FILE} was missing; rebuilt it from "
                                f"the copy in {TRIALS_FILE}"]


def test_a_fit_to_equal_accuracies_says_so_in_its_own_words(tmp_path):  # 15
    import dataclasses

    trials = [dataclasses.replace(t, accuracy=0.5) for t in synthetic_trials(seed=0)[:12]]
    directory = write_study(tmp_path / "s", trials)
    done = subprocess.run([sys.executable, "-m", "tinyscale.cli", "fit", str(directory)], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "every trial has the same accuracy" in done.stdout


# ------------------------------------------------------------------ the property: every stored file kind
PROBE = '''
import hashlib, json, os, resource, sys, traceback
from pathlib import Path
from tinyscale.cli import main
cases = json.loads(Path(sys.argv[1]).read_text())
results = []
for argv, python in cases:
    import io, contextlib
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            if python:
                from tinyscale.export import load_exported
                try:
                    load_exported(argv[0])
                    code = 0
                except ValueError as exc:
                    print(f"load_exported: error: {exc}", file=sys.stderr)
                    code = 2
            else:
                code = main(argv)
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc()
            code = "raised"
    results.append([code, err.getvalue()])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"results": results, "peak": peak}))
'''


def _corrupt_json(path: Path, rng, outside: Path) -> str:
    """One seeded corruption of a JSON file: truncation, a non-finite or huge number, a wrong
    type, a link (to a file outside, or to an endless device), or an oversized file."""
    from tinyscale.limits import MAX_JSON_BYTES

    kind = rng.choice(["truncate", "number", "type", "link", "device", "oversized"])
    text = path.read_text()
    if kind == "truncate":
        path.write_text(text[: rng.randrange(1, len(text) - 1)])
    elif kind in ("number", "type"):
        data = json.loads(text)
        holder, key = rng.choice(_number_sites(data, path.name))
        holder[key] = (rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -1e308]) if kind == "number"
                       else rng.choice(["x", [], {}, True, None]))
        path.write_text(json.dumps(data))
    elif kind == "link":
        path.unlink()
        os.symlink(outside, path)
    elif kind == "device":
        path.unlink()
        os.symlink("/dev/zero", path)
    else:
        with open(path, "a") as fh:
            fh.truncate(MAX_JSON_BYTES + 1)  # a sparse tail of NUL bytes
    return kind


def _number_sites(data: dict, name: str) -> list:
    """(container, key) of the numbers a reader of this file computes with."""
    if name == "fit.json":
        return ([(data["data"][k], i) for k in ("c", "r", "d", "accuracy") for i in range(len(data["data"][k]))]
                + [(data[s], k) for s in ("r_state", "d_state") for k in data[s] if "raw_" in k and "constraint" not in k])
    if name == "fidelity.json":
        return ([(data, k) for k in ("sigma", "rho", "rho_matched")] + [(data["signal"], k) for k in data["signal"]]
                + [(p, k) for p in data["pairs"] for k in ("brief", "long", "ratio")]
                + [(g["accuracies"], i) for g in data["noise"] for i in range(len(g["accuracies"]))])
    if name == "latency.json":
        return ([(data["calibration"], k) for k in ("slope", "per_part_us", "intercept_us")]
                + [(e, "median_us") for e in data["entries"].values()] + [(data["profile"], "batch")])
    if name == "config.json":
        return [(data, k) for k in ("steps", "batch_size", "base_resolution", "num_classes", "seed")]
    if name == "recipe.json":
        return [(data["recipe"], k) for k in ("r", "w", "d", "base_resolution", "num_classes")] + [(data, "format")]
    raise AssertionError(name)


def test_tampered_files_of_every_kind_are_one_line_exit_2_and_touch_nothing_outside(fitted_dir, tmp_path):
    import random
    import shutil

    from tinyscale.evaluate.fidelity import save_fidelity
    from tinyscale.latency import keep_with_study

    template = Path(shutil.copytree(fitted_dir, tmp_path / "template"))
    save_fidelity(_fidelity(), template)
    keep_with_study(template, fake_table([Recipe(0.5, 0.5, 1.0, base_resolution=32, num_classes=10)]))
    outside = tmp_path / "outside.txt"
    outside.write_bytes(PRECIOUS)
    rng = random.Random(28)
    # (file, the command that reads it): each run on its own tampered copy of the template.
    readers = [(CONFIG_FILE, ["trials", "{dir}"]), ("fit.json", ["recipe", "{dir}", "--ratio", "0.3"]),
               ("fidelity.json", ["fit", "{dir}", "--noise", "measured"]), ("latency.json", ["trials", "{dir}"]),
               (MANIFEST, None)]
    cases, kinds = [], []
    for i in range(40):
        name, argv = readers[i % len(readers)]
        directory = Path(shutil.copytree(template, tmp_path / f"case{i}"))
        if argv is None:  # an export directory beside the study
            directory = directory / "export"
            directory.mkdir()
            for file, data in build_export(RECIPE, formats="safetensors").files.items():
                (directory / file).write_bytes(data)
        kinds.append((name, _corrupt_json(directory / name, rng, outside)))
        cases.append(([str(directory)], True) if argv is None else
                     ([a.format(dir=directory) for a in argv], False))
    # The SQLite stores: a damaged file, a row with text where a number belongs, links.
    for i, sql in enumerate(["UPDATE trials SET accuracy = 'abc'", "UPDATE trials SET r = 1e308",
                             "UPDATE trials SET state = 'lost'", "INSERT OR REPLACE INTO meta VALUES ('target_trials', '[')"]):
        directory = Path(shutil.copytree(template, tmp_path / f"db{i}"))
        with sqlite3.connect(directory / TRIALS_FILE) as conn:
            conn.executescript(f"PRAGMA ignore_check_constraints = 1; {sql};")  # as a crafted file could hold
        kinds.append((TRIALS_FILE, sql))
        cases.append((["trials", str(directory)], False))
    for i, (name, how) in enumerate([(TRIALS_FILE, "truncate"), (TRIALS_FILE, "link"), (TRIALS_FILE + "-wal", "link"),
                                     ("study.lock", "link")]):
        directory = Path(shutil.copytree(template, tmp_path / f"file{i}"))
        path = directory / name
        if how == "truncate":
            path.write_bytes(path.read_bytes()[:1000])
        else:
            path.unlink(missing_ok=True)
            os.symlink(outside, path)
        kinds.append((name, how))
        command = ["study", "--resume", str(directory), "--trials", "20", "--workers", "1", "--quiet"]
        cases.append((command if name == "study.lock" else ["trials", str(directory)], False))
    # An export whose weights are larger than any export's may be (sparse: no disk is used).
    from tinyscale.limits import MAX_WEIGHTS_BYTES

    export = tmp_path / "big-export"
    export.mkdir()
    for file, data in build_export(RECIPE, formats="safetensors").files.items():
        (export / file).write_bytes(data)
    with open(export / WEIGHTS, "a") as fh:
        fh.truncate(MAX_WEIGHTS_BYTES + 1)
    kinds.append((WEIGHTS, "oversized"))
    cases.append(([str(export)], True))
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "cases.json")], capture_output=True, text=True,
                          cwd=REPO, timeout=900, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    wrong = [(kind, argv, code, err) for (argv, _), kind, (code, err) in zip(cases, kinds, report["results"])
             if code != 2 or "Traceback" in err or len(err.strip().splitlines()) != 1]
    assert wrong == [], "\n".join(map(repr, wrong))
    assert outside.read_bytes() == PRECIOUS
    assert report["peak"] < 2 << 30, f"peak RSS {report['peak'] / 2**30:.1f} GiB"
    assert {how for _, how in kinds} >= {"truncate", "number", "type", "link", "device", "oversized"}


@pytest.mark.parametrize("site, value", [(("data", "c", 0), 1e308), (("data", "accuracy", 1), 1e308),
                                         (("data", "r", 2), True), (("r_state", "mean_module.raw_constant"), 1e308),
                                         (("d_state", "mean_module.raw_constant"), -1e308)])
def test_a_fit_file_with_a_finite_but_absurd_number_is_refused(capsys, study_dir, site, value):
    # Found when a config.json with more fields moved the seeded tampering above onto these
    # sites: finite numbers no fit writes (1e308, JSON's true) passed as numbers and overflowed
    # every solve after them, and `recipe` exited 0.
    data = json.loads((study_dir / "fit.json").read_text())
    holder = data
    for key in site[:-1]:
        holder = holder[key]
    holder[site[-1]] = value
    (study_dir / "fit.json").write_text(json.dumps(data))
    code, _, err = cli(capsys, "recipe", study_dir, "--ratio", "0.3")
    assert_one_line(code, err, 2, "is corrupt or from another version")
