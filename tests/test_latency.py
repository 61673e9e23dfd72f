"""Latency as a budget (tinyscale.latency): the deterministic parts only, no timing asserts.

Measurement plumbing runs on a fake clock and a fake runner; the table, its calibration, the
profile files and the solvers run on fake, deterministic latencies.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from _latency_fixtures import FakeClock, fake_duration_us, fake_measurer, fake_table
from baselines import SOLVED, scale, scale_latency
from baselines.efficientnet import compound_at_phi
import tinyscale.latency as L
from tinyscale.space.arch import build_architecture
from tinyscale.cli import main
from tinyscale.space.cost import macs
from tinyscale.space.recipe import Recipe

# --------------------------------------------------------------------------------------------
# fakes


def fake_latency_us(recipe: Recipe) -> float:
    """Monotone in w and φ: MACs plus a per-block cost."""
    return macs(recipe) / 1000.0 + 20.0 * len(build_architecture(recipe).blocks)


# --------------------------------------------------------------------------------------------
# measurement plumbing


@pytest.mark.parametrize("samples", [[5, 1, 3, 2, 4], [1, 2, 3, 4], [7.5], [3, 3, 9, 1, 100, 2]])
def test_summary_matches_numpy(samples):
    s = L.summarize_samples(samples, warmup=4)
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    assert (s.median_us, s.q1_us, s.q3_us) == pytest.approx((med, q1, q3))
    assert s.iqr_us == pytest.approx(q3 - q1)
    assert (s.min_us, s.max_us, s.runs, s.warmup) == (min(samples), max(samples), len(samples), 4)


def test_time_runs_excludes_warmup_and_times_each_run_alone():
    clock = FakeClock()
    durations = iter([999_000, 999_000, 1_000, 4_000, 2_000, 8_000])  # two warm-up runs are slow
    calls = []

    def run():
        calls.append(clock.reads)
        clock.now += next(durations)

    s = L.time_runs(run, warmup=2, repeats=4, clock=clock)
    assert len(calls) == 6 and clock.reads == 8  # warm-up runs are never timed
    assert (s.runs, s.warmup) == (4, 2)
    assert s.median_us == pytest.approx(3.0) and s.min_us == 1.0 and s.max_us == 8.0


@pytest.mark.parametrize("kw", [{"warmup": -1, "repeats": 3}, {"warmup": 0, "repeats": 0},
                                {"warmup": 1.5, "repeats": 3}, {"warmup": True, "repeats": 3}])
def test_time_runs_rejects_bad_counts(kw):
    with pytest.raises(ValueError):
        L.time_runs(lambda: None, clock=FakeClock(), **kw)


def test_summary_needs_samples():
    with pytest.raises(ValueError, match="no timed runs"):
        L.summarize_samples([])


def test_measurer_uses_network_and_part_counts_and_shapes():
    m = fake_measurer(batch=3)
    recipe = Recipe(0.5, 0.5, 0.5, base_resolution=64, num_classes=10)
    whole = m.measure_recipe(recipe)
    assert whole.runs == 3 and whole.warmup == 2
    assert m.calls[-1] == ((3, 3, 32, 32), True)
    part = L.recipe_parts(recipe)[2]
    ps = m.measure_part(part)
    assert ps.runs == 2 and ps.warmup == 1
    assert m.calls[-1] == ((3, part.in_channels, part.size, part.size), False)


def test_torch_engine_fixes_threads_channels_last_eval_and_inference_mode():
    seen = {}

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.update(threads=torch.get_num_threads(), cl=x.is_contiguous(memory_format=torch.channels_last),
                        inference=torch.is_inference_mode_enabled(), training=self.training)
            return x

    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    stats = L.Measurer(engine="torch", threads=wanted, warmup=0, repeats=2).measure_module(Probe().train(), (1, 3, 8, 8))
    assert stats.runs == 2
    assert seen == {"threads": wanted, "cl": True, "inference": True, "training": False}
    assert torch.get_num_threads() == before  # restored


def test_onnxruntime_options_fix_threads():
    opts = L.ort_session_options(3)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1


def test_onnxruntime_engine_times_graphs_that_compute_the_part():
    """The onnxruntime runner times graphs written by the export's one ONNX writer: a part's
    graph gives the part module's output, and parts and whole networks are both timed."""
    import onnxruntime as ort

    from tinyscale.export.onnx import part_onnx

    recipe = Recipe(0.5, 0.5, 0.5, base_resolution=64, num_classes=10)
    block = L.recipe_parts(recipe)[2]
    module = block.build_module()
    x = torch.randn(*block.input_shape(2), generator=torch.Generator().manual_seed(4))
    session = ort.InferenceSession(part_onnx(module, x), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = module(x).numpy()
    assert float(np.max(np.abs(session.run(None, {"x": x.numpy()})[0] - expected))) <= 1e-4
    m = L.Measurer(engine="onnxruntime", warmup=0, repeats=2, part_warmup=0, part_repeats=3)
    assert m.measure_part(block).runs == 3
    assert m.measure_recipe(recipe).runs == 2


@pytest.mark.parametrize("kw, match", [({"engine": "tvm"}, "engine"), ({"threads": 0}, "threads"),
                                       ({"batch": 0}, "batch"), ({"repeats": 0}, "repeats")])
def test_measurer_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        L.Measurer(**kw)


def test_device_profile_of_this_machine():
    p = L.DeviceProfile.current("torch", 2, 4)
    assert (p.engine, p.engine_version, p.threads, p.batch) == ("torch", torch.__version__, 2, 4)
    assert p.family == "efficientnet-b0" and p.format_version == L.FORMAT_VERSION and p.cpu
    assert p.same_device(L.DeviceProfile.current("torch", 2, 4))
    assert not p.same_device(L.DeviceProfile.current("torch", 1, 4))


# --------------------------------------------------------------------------------------------
# parts and the table


def random_recipes(n: int, seed: int, base: int = 224) -> list[Recipe]:
    rng = random.Random(seed)
    return [Recipe(r=rng.uniform(0.3, 1.3), w=rng.uniform(0.2, 1.6), d=rng.uniform(0.3, 1.8),
                   rules=rng.choice(["tinynet", "efficientnet"]), base_resolution=base,
                   num_classes=rng.choice([10, 1000])) for _ in range(n)]


def test_parts_cover_the_network_exactly():
    for recipe in random_recipes(60, seed=1):
        arch = build_architecture(recipe)
        parts = L.parts_of(arch)
        assert len(parts) == len(arch.blocks) + 2
        assert parts[0].role == "stem" and parts[-1].role == "head"
        assert sum(p.macs for p in parts) == macs(recipe)  # the parts' shapes are the counted network's


def test_b0_parts_and_keys():
    parts = L.recipe_parts(Recipe(1, 1, 1))
    assert [p.kind for p in parts[1:-1]] == ["ds"] + ["ir"] * 15
    assert parts[0].key == "stem:conv:k3s2:c3-3-32:se0:hw224:n0"
    assert parts[1].key == "block:ds:k3s1:c32-32-16:se8:hw112:n0"
    assert parts[2].key == "block:ir:k3s2:c16-96-24:se4:hw112:n0"
    assert parts[-1].key == "head:conv:k1s1:c320-320-1280:se0:hw7:n1000"
    # 12 distinct blocks (stages 1-5: a first block and a repeated one; stages 0 and 6: one) + stem + head
    assert len({p.key for p in parts}) == 14


def test_part_modules_chain_into_the_network_shapes():
    recipe = Recipe(0.5, 0.6, 0.5, base_resolution=64, num_classes=7)
    x = torch.randn(2, 3, recipe.resolution, recipe.resolution)
    with torch.no_grad():
        for part in L.recipe_parts(recipe):
            assert tuple(x.shape) == part.input_shape(2)
            module = part.build_module()
            assert not module.training
            x = module(x)
    assert tuple(x.shape) == (2, 7)


def test_parts_given_the_networks_weights_compute_the_network():
    """Each part's module is the network's own piece: loaded with the network's weights, the
    stem, the blocks and the head chained give the network's output (eval mode)."""
    from tinyscale.space.model import build_model

    recipe = Recipe(0.5, 0.6, 0.5, base_resolution=64, num_classes=7)
    torch.manual_seed(0)
    net = build_model(recipe).eval()
    state = net.state_dict()
    arch = build_architecture(recipe)
    x = torch.randn(2, 3, recipe.resolution, recipe.resolution, generator=torch.Generator().manual_seed(1))
    y = x
    with torch.no_grad():
        for n, part in enumerate(L.recipe_parts(recipe)):
            module = part.build_module()
            if part.role == "stem":
                renamed = {"conv_stem.": "0.", "bn1.": "1."}
                weights = {renamed[k.split(".")[0] + "."] + k.split(".", 1)[1]: v for k, v in state.items()
                           if k.split(".")[0] + "." in renamed}
            elif part.role == "head":
                weights = {k: v for k, v in state.items() if k.split(".")[0] in ("conv_head", "bn2", "classifier")}
            else:
                spec = arch.blocks[n - 1]
                prefix = f"blocks.{spec.stage}.{spec.index}."
                weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            module.load_state_dict(weights, strict=True)
            y = module(y)
        assert torch.allclose(y, net(x), atol=1e-5, rtol=1e-5)


def test_fill_measures_each_distinct_part_once_and_prediction_sums_them():
    recipes = random_recipes(4, seed=2, base=64)
    m = fake_measurer()
    table = L.LatencyTable(m.profile())
    n = table.fill(recipes, m)
    keys = {p.key for r in recipes for p in L.recipe_parts(r)}
    assert n == len(keys) == len(table.entries) == len(m.calls)
    assert table.fill(recipes, m) == 0  # nothing new to measure
    for recipe in recipes:
        parts = L.recipe_parts(recipe)
        expected = sum(fake_duration_us(p.build_module(), p.input_shape(1)) for p in parts)
        pred = table.predict(recipe)
        assert pred.estimated == 0 and pred.parts == len(parts)
        assert pred.summed_us == pytest.approx(expected, rel=1e-6)
        assert pred.latency_us == pytest.approx(expected, rel=1e-6)  # identity calibration


def affine_table(recipes, fixed_us=40.0, per_mac_us=2e-5) -> L.LatencyTable:
    """Entries whose latency is exactly fixed + per_mac · MACs (the estimate's own model)."""
    table = L.LatencyTable(L.DeviceProfile.current())
    for r in recipes:
        for p in L.recipe_parts(r):
            table.entries[p.key] = L.Entry(p, fixed_us + per_mac_us * p.macs, 0.0)
    return table


def test_missing_part_is_estimated_by_a_local_fixed_plus_per_mac_fit():
    table = affine_table(L.grid_recipes((48, 64, 96), (0.35, 0.5, 0.7, 1.0), base_resolution=96))
    other = Recipe(0.61, 0.8, 1.0, base_resolution=96)
    parts = L.recipe_parts(other)
    pred = table.predict(other)
    assert pred.estimated == sum(p.key not in table.entries for p in parts) > 0
    for part in parts:
        us, _ = table.lookup(part)
        assert us == pytest.approx(40.0 + 2e-5 * part.macs, rel=1e-6)
    assert pred.summed_us == pytest.approx(sum(40.0 + 2e-5 * p.macs for p in parts), rel=1e-6)


def test_estimate_from_a_single_neighbour_scales_by_macs():
    known = Recipe(0.5, 0.5, 1.0, base_resolution=64)
    table = affine_table([known])
    heads = [e for e in table.entries.values() if e.part.role == "head"]
    assert len(heads) == 1
    other = L.recipe_parts(Recipe(0.5, 1.5, 1.0, base_resolution=64))[-1]
    assert other.key not in table.entries
    assert table.lookup(other)[0] == pytest.approx(heads[0].median_us * other.macs / heads[0].part.macs)


def test_estimate_without_a_comparable_part_is_an_error():
    table = fake_table([Recipe(0.5, 0.5, 1.0, base_resolution=64)])
    table.entries = {k: e for k, e in table.entries.items() if e.part.role != "head"}
    with pytest.raises(ValueError, match="no head part like"):
        table.predict(Recipe(0.5, 0.5, 1.0, base_resolution=64))


def point(summed, parts, measured):
    return L.CalibrationPoint(Recipe(1, 1, 1), measured, summed, parts)


def test_calibration_recovers_a_known_linear_correction():
    truth = L.Calibration(1.3, 40.0, 250.0)
    pts = [point(s, n, truth.apply(s, n)) for s, n in [(1000, 12), (5000, 20), (2500, 30), (9000, 18), (4000, 9)]]
    cal = L.Calibration.fit(pts)
    assert (cal.slope, cal.per_part_us, cal.intercept_us) == pytest.approx((1.3, 40.0, 250.0), rel=1e-6)


def test_calibration_never_has_negative_terms_and_falls_back_to_proportional():
    # Measured below the sum with fewer parts -> unconstrained least squares would go negative.
    pts = [point(1000, 30, 1500), point(2000, 10, 2900), point(3000, 20, 4400), point(4000, 5, 5800)]
    cal = L.Calibration.fit(pts)
    assert cal.slope > 0 and cal.per_part_us >= 0 and cal.intercept_us >= 0
    few = L.Calibration.fit([point(1000, 10, 2000), point(3000, 10, 6000)])
    assert (few.slope, few.per_part_us, few.intercept_us) == (2.0, 0.0, 0.0)


def test_build_table_on_the_small_grid_with_a_fake_device():
    m = fake_measurer()
    table = L.build_table(m, grid="small", calibration=5)
    grid = L.grid_recipes(L.SMALL_GRID_SIDES, L.SMALL_GRID_WIDTHS)
    assert {p.key for r in grid for p in L.recipe_parts(r)} == set(table.entries)
    assert len(table.calibration.points) == 5
    for pt in table.calibration.points:  # calibration networks are made of grid parts only
        assert all(p.key in table.entries for p in L.recipe_parts(pt.recipe))
        assert pt.recipe.resolution in L.SMALL_GRID_SIDES
    with pytest.raises(ValueError, match="grid"):
        L.build_table(m, grid="huge")


def test_grid_recipes_hit_their_sides_exactly():
    for r in L.grid_recipes():
        assert r.resolution in L.GRID_SIDES and min(build_architecture(r).depths) >= 2


# --------------------------------------------------------------------------------------------
# profile files


@pytest.fixture()
def saved(tmp_path):
    table = fake_table([Recipe(0.5, 0.5, 1.0, base_resolution=64)])
    table.calibration = L.Calibration(1.1, 5.0, 30.0, (point(100.0, 12, 150.0),))
    path = table.save(tmp_path / "device.json")
    return table, path


def test_profile_round_trips(saved):
    table, path = saved
    back = L.LatencyTable.load(path)
    assert back.profile == table.profile and back.entries == table.entries
    r = Recipe(0.5, 0.7, 1.3, base_resolution=64)
    assert back.predict(r) == table.predict(r)


def edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, match", [
    (lambda d: d["profile"].update(family="mobilenet-v3"), "architecture family 'mobilenet-v3'"),
    (lambda d: d.update(format_version=99), "format version 99"),
    (lambda d: d.update(format="something-else"), "not a tinyscale latency table"),
    (lambda d: d.pop("entries"), "missing 'entries'"),
    (lambda d: d["profile"].pop("cpu"), "lacks 'cpu'"),
    (lambda d: d["profile"].update(engine="tvm"), "engine"),
    (lambda d: next(iter(d["entries"].values())).update(median_us=-1), "latency -1"),
    (lambda d: next(iter(d["entries"].values())).pop("part"), "malformed"),
    (lambda d: d["calibration"].pop("slope"), "malformed"),
    (lambda d: d.update(entries={}), "no entries"),
])
def test_profile_validation_errors(saved, change, match):
    _, path = saved
    edit(path, change)
    with pytest.raises(ValueError, match=match):
        L.LatencyTable.load(path)


def test_truncated_profile_is_a_clear_error(saved):
    _, path = saved
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        L.LatencyTable.load(path)


def test_renamed_entry_key_is_refused(saved):
    _, path = saved

    def rename(d):
        k = next(iter(d["entries"]))
        d["entries"]["block:ds:k9s9:bogus"] = d["entries"].pop(k)

    edit(path, rename)
    with pytest.raises(ValueError, match="holds the part"):
        L.LatencyTable.load(path)


# --------------------------------------------------------------------------------------------
# solving for a latency target (fake, deterministic latency)


@pytest.mark.parametrize("target_ms", [30.0, 40.0, 80.0, 300.0])
def test_width_meets_a_latency_target(target_ms):
    target = target_ms * 1000
    sol = L.solve_width_latency(target, 0.8, 0.9, fake_latency_us)
    assert sol.below <= target <= sol.above
    assert sol.achieved == fake_latency_us(sol.recipe)
    assert sol.achieved in (sol.below, sol.above)
    assert abs(sol.achieved - target) == min(target - sol.below, sol.above - target)
    assert fake_latency_us(sol.recipe_below) == sol.below and fake_latency_us(sol.recipe_above) == sol.above
    assert (sol.recipe.r, sol.recipe.d) == (0.8, 0.9)
    # The steps are adjacent: no width strictly between them lands strictly between the two latencies.
    wb, wa = sol.recipe_below.w, sol.recipe_above.w
    for w in np.linspace(min(wb, wa), max(wb, wa), 7):
        v = fake_latency_us(sol.recipe.with_(w=float(w)))
        assert not sol.below < v < sol.above


def test_width_solution_is_monotone_in_the_target():
    ws = [L.solve_width_latency(ms * 1000, 0.7, 1.0, fake_latency_us).recipe.w for ms in (25, 40, 80, 160, 320, 640)]
    lat = [fake_latency_us(Recipe(0.7, w, 1.0)) for w in ws]
    assert lat == sorted(lat) and ws == sorted(ws)


def test_unreachable_latency_names_the_range():
    with pytest.raises(ValueError, match="out of reach for width.*latencies from"):
        L.solve_width_latency(0.001, 0.8, 0.9, fake_latency_us)


@pytest.mark.parametrize("target_ms", [1.0, 10.0, 100.0])
def test_phi_meets_a_latency_target(target_ms):
    target = target_ms * 1000
    sol, name = scale_latency("efficientnet", target, fake_latency_us)
    assert name == "phi"
    assert sol.below <= target <= sol.above
    assert sol.recipe == compound_at_phi(sol.knob)
    assert sol.achieved == fake_latency_us(sol.recipe) and sol.achieved in (sol.below, sol.above)
    assert sol.recipe.rules == "efficientnet"


def test_phi_is_monotone_in_the_latency_target():
    phis = [scale_latency("efficientnet", ms * 1000, fake_latency_us)[0].knob for ms in (1, 3, 10, 30, 100)]
    assert phis == sorted(phis)


@pytest.mark.parametrize("rule", [r for r in SOLVED if r != "efficientnet"])
def test_every_solved_rule_meets_a_latency_target_along_its_own_path(rule):
    """The latency answer is a network of the rule's own path (the MACs solver gives the same
    network at the answer's MACs ratio), bracketing the target, closer side chosen."""
    from tinyscale.space.cost import baseline_macs

    for c in (0.55, 0.9):  # targets every rule can reach (depth alone stops at c = 0.45): a little over its networks at these ratios
        target = 1.01 * fake_latency_us(scale(rule, c).recipe)
        sol, _ = scale_latency(rule, target, fake_latency_us)
        assert sol.below <= target <= sol.above
        assert sol.achieved == fake_latency_us(sol.recipe) and sol.achieved in (sol.below, sol.above)
        assert abs(sol.achieved - target) <= max(target - sol.below, sol.above - target)
        c = macs(sol.recipe) / baseline_macs(sol.recipe)
        on_path = scale(rule, c).recipe
        assert build_architecture(on_path) == build_architecture(sol.recipe)
        assert on_path.resolution == sol.recipe.resolution


def test_a_latency_target_needs_a_solved_rule():
    with pytest.raises(ValueError, match="solved rule"):
        scale_latency("tinynet-a", 5000, fake_latency_us)
    with pytest.raises(ValueError, match="out of reach for fast"):
        scale_latency("fast", 0.01, fake_latency_us)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "5"])
def test_bad_latency_budget(bad):
    with pytest.raises(ValueError, match="latency budget"):
        L.check_latency_ms(bad)


def test_mnasnet_reward():
    assert L.mnasnet_reward(0.8, 15.0, 15.0) == pytest.approx(0.8)
    assert L.mnasnet_reward(0.8, 30.0, 15.0) == pytest.approx(0.8 * 2 ** -0.07)
    assert L.mnasnet_reward(0.8, 7.5, 15.0) > 0.8 > L.mnasnet_reward(0.8, 16.0, 15.0)
    with pytest.raises(ValueError):
        L.mnasnet_reward(0.8, 0.0, 15.0)


# --------------------------------------------------------------------------------------------
# command line


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def device_files(tmp_path_factory):
    """A fake table measured 'here' (this machine's profile) and the same table from 'elsewhere'."""
    d = tmp_path_factory.mktemp("latency")
    grid = L.grid_recipes(L.SMALL_GRID_SIDES, L.SMALL_GRID_WIDTHS, base_resolution=224, num_classes=1000)
    grid += L.grid_recipes((16, 24, 32), L.SMALL_GRID_WIDTHS, base_resolution=32, num_classes=10)
    table = fake_table(grid)
    here = table.save(d / "here.json")
    data = json.loads(here.read_text())
    data["profile"]["cpu"] = "Some Other CPU 9000"
    elsewhere = d / "elsewhere.json"
    elsewhere.write_text(json.dumps(data))
    return here, elsewhere


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from _fit_fixtures import synthetic_trials, write_study

    directory = write_study(tmp_path_factory.mktemp("lat-study") / "study", synthetic_trials(seed=1))
    assert main(["fit", str(directory), "--method", "pareto", "--pareto-k", "20"]) == 0
    return directory


def fake_stats(self, recipe):
    return L.summarize_samples([1000.0, 1100.0, 1200.0], warmup=1)


def test_latency_command_predicts_from_a_table_of_another_device(device_files, capsys, monkeypatch):
    _, elsewhere = device_files
    monkeypatch.setattr(L.Measurer, "measure_recipe", lambda *a: pytest.fail("measured on the wrong device"))
    code, out, err = run(capsys, "latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--latency-table", elsewhere, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    table = L.LatencyTable.load(elsewhere)
    assert data["predicted"]["latency_us"] == pytest.approx(table.predict_us(Recipe(0.5, 0.5, 0.5)))
    assert data["measured"] is None and data["device"]["cpu"] == "Some Other CPU 9000"
    code, out, _ = run(capsys, "latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--latency-table", elsewhere)
    assert code == 0 and "predicted" in out and "measured   not here" in out


def test_latency_command_measures_here(device_files, capsys, monkeypatch):
    here, _ = device_files
    monkeypatch.setattr(L.Measurer, "measure_recipe", fake_stats)
    data = json.loads(run(capsys, "latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--latency-table", here, "--json")[1])
    assert data["measured"]["median_us"] == 1100.0 and data["predicted"]["latency_us"] > 0
    data = json.loads(run(capsys, "latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--threads", 2, "--json")[1])
    assert data["predicted"] is None and data["threads"] == 2 and data["engine"] == "torch"


@pytest.mark.parametrize("argv, match", [
    (["latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--threads", 0], "threads must be"),
    (["latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--batch", 0], "batch must be"),
    (["latency", "--r", 0.5, "--w", 0.5, "--d", 0.5, "--repeats", 0], "repeats must be"),
    (["latency", "--r", -1, "--w", 0.5, "--d", 0.5], "r must be"),
    (["latency-table", "--out", "x.json", "--calibration", 1], "calibration recipes"),
    (["latency-table", "--out", "x.json", "--threads", 0], "threads must be"),
])
def test_latency_commands_reject_bad_input(capsys, argv, match):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and match in err and len(err.strip().splitlines()) == 1


def test_latency_command_engine_is_a_choice(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["latency", "--r", "1", "--w", "1", "--d", "1", "--engine", "tvm"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_options_contradicting_the_profile_are_errors(device_files, capsys):
    _, elsewhere = device_files
    code, _, err = run(capsys, "latency", "--r", 1, "--w", 1, "--d", 1, "--latency-table", elsewhere, "--engine",
                       "onnxruntime")
    assert code == 2 and "contradicts the device table" in err


def test_a_corrupt_device_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tinyscale-latency-table", "format_')
    code, _, err = run(capsys, "latency", "--r", 1, "--w", 1, "--d", 1, "--latency-table", bad)
    assert code == 2 and "truncated or corrupt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("rule", ["efficientnet", "fast"])
def test_scale_solves_a_rule_for_a_latency(rule, device_files, capsys):
    _, elsewhere = device_files
    table = L.LatencyTable.load(elsewhere)
    code, out, err = run(capsys, "scale", "--rule", rule, "--latency-ms", 20, "--latency-table", elsewhere, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    assert data["strategy"] == rule
    if rule == "efficientnet":
        recipe = compound_at_phi(data["phi"])
        assert data["s"] is None
    else:
        recipe = Recipe(data["r"], data["w"], data["d"], rules=data["rules"])
        assert data["phi"] is None and data["s"] > 0
    assert data["latency_predicted_ms"] == pytest.approx(table.predict_us(recipe) / 1000)
    assert data["latency_below_ms"] <= 20 <= data["latency_above_ms"]
    assert data["macs"] == macs(recipe) and data["latency_measured_ms"] is None


def test_scale_latency_for_a_one_axis_rule_prints_no_phi(device_files, capsys):
    _, elsewhere = device_files
    code, out, err = run(capsys, "scale", "--rule", "depth", "--latency-ms", 20, "--latency-table", elsewhere)
    assert code == 0 and "strategy" in out and "depth" in out and "phi" not in out


def test_scale_latency_verifies_on_this_machine(device_files, capsys, monkeypatch):
    here, _ = device_files
    monkeypatch.setattr(L.Measurer, "measure_recipe", fake_stats)
    code, out, err = run(capsys, "scale", "--rule", "efficientnet", "--latency-ms", 20, "--latency-table", here)
    assert code == 0, err
    assert "measured   1.100 ms median" in out


@pytest.mark.parametrize("argv, match", [
    (["--rule", "tinynet-b", "--latency-ms", 5, "--latency-table", "{d}"], "published recipe"),
    (["--rule", "efficientnet", "--latency-ms", 5], "needs both"),
    (["--rule", "efficientnet", "--latency-ms", 5, "--ratio", 0.5, "--latency-table", "{d}"], "not both"),
    (["--rule", "efficientnet", "--latency-ms", -5, "--latency-table", "{d}"], "latency budget"),
])
def test_scale_latency_errors(device_files, capsys, argv, match):
    _, elsewhere = device_files
    code, out, err = run(capsys, "scale", *[str(a).replace("{d}", str(elsewhere)) for a in argv])
    assert code == 2 and match in err


def test_recipe_meets_a_latency_on_another_device(study, device_files, capsys, monkeypatch):
    _, elsewhere = device_files
    monkeypatch.setattr(L.Measurer, "measure_recipe", lambda *a: pytest.fail("measured on the wrong device"))
    table = L.LatencyTable.load(elsewhere)
    lo = table.predict_us(Recipe(0.35, 0.3, 0.35, base_resolution=32, num_classes=10))
    hi = table.predict_us(Recipe(1.0, 1.0, 1.5, base_resolution=32, num_classes=10))
    target_ms = (lo + hi) / 2 / 1000
    code, out, err = run(capsys, "recipe", study, "--latency-ms", target_ms, "--latency-table", elsewhere, "--json")
    assert code == 0, err
    data = json.loads(out)
    recipe = Recipe(data["r"], data["w"], data["d"], base_resolution=32, num_classes=10)
    assert data["latency_predicted_ms"] == pytest.approx(table.predict_us(recipe) / 1000)
    assert data["width_solved"] and data["latency_below_ms"] <= target_ms <= data["latency_above_ms"]
    assert data["latency_measured_ms"] is None and data["macs"] == macs(recipe)


def test_recipe_verifies_on_this_machine(study, device_files, capsys, monkeypatch):
    here, _ = device_files
    monkeypatch.setattr(L.Measurer, "measure_recipe", fake_stats)
    code, out, err = run(capsys, "recipe", study, "--latency-ms", 2, "--latency-table", here)
    assert code == 0, err
    assert "predicted" in out and "measured   1.100 ms median" in out and "MACs" in out


@pytest.mark.parametrize("argv, match", [
    (["--latency-ms", 2], "needs --latency-table"),
    (["--ratio", 0.3, "--latency-table", "x.json"], "--latency-table goes with --latency-ms"),
])
def test_recipe_latency_errors(study, capsys, argv, match):
    code, out, err = run(capsys, "recipe", study, *argv)
    assert code == 2 and match in err


# --------------------------------------------------------------------------------------------
# studies: predicted latency per trial, latency as the Pareto objective, MnasNet's reward


def test_pareto_selection_with_a_latency_cost_ranks_by_latency():
    from _fit_fixtures import synthetic_trials
    from tinyscale.fit.pareto import select

    trials = synthetic_trials(seed=3)
    # A device on which latency runs against MACs: the cheapest networks are the slowest.
    inverse = {t.number: 1e12 / t.macs for t in trials}
    by_macs = select(trials, 8)
    by_lat = select(trials, 8, cost=lambda t: inverse[t.number])
    assert {t.number for t in by_lat.front} != {t.number for t in by_macs.front}
    # Front 1 under the latency cost is exactly the trials no other beats on both accuracy and latency.
    expected = {t.number for t in trials
                if not any(o.accuracy >= t.accuracy and inverse[o.number] <= inverse[t.number]
                           and (o.accuracy > t.accuracy or inverse[o.number] < inverse[t.number]) for o in trials)}
    assert {t.number for t in by_lat.front} == expected
    with pytest.raises(ValueError, match="positive number"):
        select(trials, 8, cost=lambda t: 0.0)


def test_fit_objective_latency_needs_a_table_and_the_pareto_method(study, device_files, capsys):
    code, _, err = run(capsys, "fit", study, "--method", "pareto", "--objective", "latency")
    assert code == 2 and "needs a latency table" in err
    _, elsewhere = device_files
    code, _, err = run(capsys, "fit", study, "--objective", "latency", "--latency-table", elsewhere)
    assert code == 2 and "for the pareto method" in err
    code, _, err = run(capsys, "fit", study, "--method", "pareto", "--latency-table", elsewhere)
    assert code == 2 and "--latency-table goes with --objective latency" in err


def test_fit_objective_latency_selects_on_predicted_latency(tmp_path, device_files, capsys):
    from _fit_fixtures import synthetic_trials, write_study
    from tinyscale.fit.gp import ScalingFit
    from tinyscale.fit.pareto import select

    _, elsewhere = device_files
    directory = write_study(tmp_path / "s", synthetic_trials(seed=1))
    code, out, err = run(capsys, "fit", directory, "--method", "pareto", "--pareto-k", 12, "--objective", "latency",
                         "--latency-table", elsewhere, "--json")
    assert code == 0, err
    data = json.loads(out)
    table = L.LatencyTable.load(elsewhere)
    trials = synthetic_trials(seed=1)
    expected = select(trials, 12, cost=lambda t: table.predict_us(t.recipe))
    assert data["objective"] == "latency" and data["selected"] == sorted(t.number for t in expected.selected)
    assert ScalingFit.load(directory).objective == "latency"


def test_trials_show_predicted_latency_and_reward(tmp_path, device_files, capsys):
    from _fit_fixtures import synthetic_trials, write_study

    _, elsewhere = device_files
    directory = write_study(tmp_path / "s", synthetic_trials(n_good=6, n_decoys=2, seed=1))
    data = json.loads(run(capsys, "trials", directory, "--json")[1])
    assert "latency_ms" not in data["trials"][0] and "device" not in data
    L.keep_with_study(directory, L.LatencyTable.load(elsewhere))  # what `study --latency-table FILE` does
    table = L.LatencyTable.load(directory / L.LATENCY_FILE)
    data = json.loads(run(capsys, "trials", directory, "--json", "--target-ms", 3)[1])
    for row in data["trials"]:
        recipe = Recipe(row["r"], row["w"], row["d"], base_resolution=32, num_classes=10)
        assert row["latency_ms"] == pytest.approx(table.predict_us(recipe) / 1000)
        assert row["reward"] == pytest.approx(row["accuracy"] * (row["latency_ms"] / 3) ** -0.07)
    code, out, _ = run(capsys, "trials", directory, "--target-ms", 3)
    assert code == 0 and "lat ms" in out and "best MnasNet reward at 3 ms" in out


def test_trials_reward_needs_a_table(tmp_path, capsys):
    from _fit_fixtures import synthetic_trials, write_study

    directory = write_study(tmp_path / "s", synthetic_trials(n_good=6, n_decoys=2, seed=1))
    code, _, err = run(capsys, "trials", directory, "--target-ms", 3)
    assert code == 2 and "needs a latency table" in err


def test_study_keeps_a_valid_device_table_and_refuses_a_bad_one(tmp_path, device_files, capsys):
    _, elsewhere = device_files
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = run(capsys, "study", "--data", "generated", "--out", tmp_path / "s", "--trials", 1,
                       "--latency-table", bad, "--quiet")
    assert code == 2 and "not a tinyscale latency table" in err
    assert not (tmp_path / "s" / "config.json").exists()


def test_solver_latency_answer_meets_the_target_and_reads_like_a_ratio_answer(device_files):
    from _fit_fixtures import fitted
    from tinyscale.space.cost import cost, ratio
    from tinyscale.fit.solve import RecipeSolver

    solver = RecipeSolver(fitted(1))
    table = L.LatencyTable.load(device_files[1])
    lo = table.predict_us(solver.solve(0.08).recipe)
    hi = table.predict_us(solver.solve(0.8).recipe)
    targets = [lo + (hi - lo) * f for f in (0.2, 0.5, 0.8)]
    answers = [solver.solve_latency(t, table.predict_us) for t in targets]
    for target, ans in zip(targets, answers):
        assert ans.width_solved and ans.below_us <= target <= ans.above_us
        assert ans.predicted_us == table.predict_us(ans.recipe)
        assert (ans.recipe.r, ans.recipe.d) == (ans.at_ratio.recipe.r, ans.at_ratio.recipe.d)
        shaped = ans.recipe_answer()
        assert shaped.recipe == ans.recipe and shaped.macs == cost(ans.recipe).macs
        assert shaped.achieved == pytest.approx(ratio(ans.recipe))
    assert [a.predicted_us for a in answers] == sorted(a.predicted_us for a in answers)
    with pytest.raises(ValueError, match="out of reach for the fitted recipes"):
        solver.solve_latency(lo / 1000, table.predict_us)


def test_first_reaching_stops_at_the_tolerance():
    from tinyscale.space.steps import first_reaching

    calls = []

    def value(recipe):
        calls.append(recipe.w)
        return recipe.w

    t = first_reaching(value, lambda w: Recipe(1, w, 1), 0.3, 0.01, 8.0, tol=1e-3)
    assert 0.3 <= t <= 0.3 + 1e-3 and len(calls) <= 14


def test_accuracy_figure_over_latency_uses_the_predicted_latency():
    from _fit_fixtures import synthetic_trials
    from tinyscale.assistant import plots
    from tinyscale.fit.pareto import select

    trials = synthetic_trials(n_good=8, n_decoys=4, seed=2)
    ms = {t.recipe: 1.0 + t.number for t in trials}
    sel = select(trials, 4, cost=lambda t: ms[t.recipe])
    fig = plots.accuracy_figure(sel, latency_ms=lambda r: ms[r])
    assert fig.layout.xaxis.title.text == "predicted latency (ms)"
    by_name = {t.name: t for t in fig.data}
    chosen = by_name[plots.TRACE_SELECTED]
    assert sorted(chosen.x) == sorted(ms[t.recipe] for t in sel.selected)
    front = by_name[plots.TRACE_FRONT]
    assert list(front.x) == sorted(ms[t.recipe] for t in sel.front)


def test_build_table_on_given_sides_widths_and_classes():
    from _latency_fixtures import fake_measurer

    table = L.build_table(fake_measurer(), sides=[16, 32], widths=[0.5, 1.0], num_classes=10, calibration=4)
    sizes = {e.part.size for e in table.entries.values() if e.part.role == "stem"}
    assert sizes == {16, 32}
    assert {e.part.classes for e in table.entries.values() if e.part.role == "head"} == {10}
    study_recipe = Recipe((24 + 0.5) / 32, 0.7, 0.8, base_resolution=32, num_classes=10)
    assert table.predict(study_recipe).latency_us > 0


@pytest.mark.parametrize("argv, match", [
    (["--sides", "16,x"], "--sides takes comma-separated numbers"),
    (["--sides", "4,16"], "grid sides must be"),
    (["--widths", "0.5,9"], "grid widths must be"),
])
def test_latency_table_grid_options_are_checked(capsys, tmp_path, argv, match):
    code, _, err = run(capsys, "latency-table", "--out", tmp_path / "t.json", *argv)
    assert code == 2 and match in err and not (tmp_path / "t.json").exists()


# --------------------------------------------------------------------------------------------
# the gp correction


def _shape_bias_points(recipes, bias: float = 0.3) -> list:
    """Calibration points whose whole-network latency is the linear sum times a shape effect:
    measured = summed · w^bias (wide networks slower than their parts), as onnxruntime shows."""
    return [L.CalibrationPoint(r, 1000.0 * (1 + i % 3) * r.w ** bias, 1000.0 * (1 + i % 3), 10)
            for i, r in enumerate(recipes)]


def test_the_gp_correction_learns_a_shape_effect_the_linear_fit_cannot():
    train = L.box_recipes(count=24, seed=3)
    test = L.box_recipes(count=12, seed=4)
    linear = L.Calibration.fit(_shape_bias_points(train), "linear")
    gp = L.Calibration.fit(_shape_bias_points(train), "gp")
    assert (gp.slope, gp.per_part_us, gp.intercept_us) == (linear.slope, linear.per_part_us, linear.intercept_us)

    def mape(cal):
        pts = _shape_bias_points(test)
        return sum(abs(cal.apply(p.summed_us, p.parts, p.recipe) / p.measured_us - 1) for p in pts) / len(pts)

    assert mape(gp) < 0.5 * mape(linear) and mape(linear) > 0.05
    # without a recipe (or far from nothing) the linear part stands
    assert gp.apply(1000.0, 10) == linear.apply(1000.0, 10)


def test_a_gp_table_round_trips_and_bad_corrections_are_refused(tmp_path):
    table = L.build_table(fake_measurer(), grid="small", correction="gp", calibration=8)
    assert table.calibration.kind == "gp" and len(table.calibration.points) == 8
    recipe = Recipe(0.6, 0.5, 0.8)
    path = table.save(tmp_path / "gp.json")
    again = L.LatencyTable.load(path)
    assert again.calibration.kind == "gp" and again.predict_us(recipe) == pytest.approx(table.predict_us(recipe))
    linear = L.build_table(fake_measurer(), grid="small", calibration=4)
    assert "kind" not in json.loads(linear.save(tmp_path / "lin.json").read_text())["calibration"]
    with pytest.raises(ValueError, match="calibration recipes must be an integer of at least 8"):
        L.build_table(fake_measurer(), grid="small", correction="gp", calibration=5)
    with pytest.raises(ValueError, match="correction must be one of linear, gp"):
        L.build_table(fake_measurer(), grid="small", correction="spline")
    data = json.loads(path.read_text())
    data["calibration"]["kind"] = "spline"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="calibration kind 'spline'"):
        L.LatencyTable.load(tmp_path / "bad.json")
    data["calibration"]["kind"] = "gp"
    data["calibration"]["points"] = data["calibration"]["points"][:3]
    (tmp_path / "few.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="gp calibration with 3 points"):
        L.LatencyTable.load(tmp_path / "few.json")


def test_box_recipes_span_the_grid_box_and_are_seeded():
    a = L.box_recipes(count=20, seed=1)
    assert a == L.box_recipes(count=20, seed=1) and a != L.box_recipes(count=20, seed=2)
    assert len(set(a)) == 20
    assert all(min(L.GRID_SIDES) <= r.resolution <= max(L.GRID_SIDES) for r in a)
    assert all(min(L.GRID_WIDTHS) <= r.w <= max(L.GRID_WIDTHS) and 0.35 <= r.d <= 1.5 for r in a)
