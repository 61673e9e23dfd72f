"""A `Comparison` as tables: flat dicts (what the UI and ``--json`` show), CSV and GitHub Markdown.
Accuracies are in percent, margins in percentage points."""

from __future__ import annotations

import csv
import io
import statistics

from tinyscale.evaluate.compare.results import Comparison, ComparisonRow
from tinyscale.space.cost import cost, macs
from tinyscale.space.recipe import Recipe


def _short_recipe(recipe: Recipe | None) -> str:
    return "" if recipe is None else f"r={recipe.r:.4g} w={recipe.w:.4g} d={recipe.d:.4g} ({recipe.resolution} px)"


def comparison_table(comparison: Comparison) -> list[dict]:
    """One flat dict per row (ratio, strategy): what the Markdown/CSV tables and the UI show.

    Accuracies are in percent, margins in percentage points, paired by seed. ``gp_margin`` is
    the GP recipe minus the row's strategy (on every other row, with ``gp_margin_stderr``);
    the GP rows keep ``margin_vs_efficientnet``/``margin_stderr``, the same number as
    ``gp_margin`` on the EfficientNet row. An interpolated row (``interpolated``) gives its
    two trained steps (``achieved_below``/``achieved_above``, ``recipe_below``/``recipe_above``,
    ``macs_*``, ``params_*``, their mean top-1 ``acc_below``/``acc_above``); its ``acc_mean``
    is interpolated at c, and r, w, d, resolution, achieved, MACs and params are those of the
    step closer to c. ``effective_macs`` is where the accuracy applies: c × B0's MACs for an
    interpolated row, the recipe's MACs otherwise.
    """
    gp_in = "gp" in comparison.settings.strategies
    out = []
    for row in comparison.rows:
        r, b = row.recipe, row.bracket
        m_eff = comparison.margin(row.ratio, "efficientnet") if row.strategy == "gp" else None
        m_gp = comparison.margin(row.ratio, row.strategy) if gp_in and row.strategy != "gp" else None
        out.append({
            "target": row.ratio,
            "strategy": row.strategy,
            "rules": r.rules if r else "",
            "r": r.r if r else None,
            "w": r.w if r else None,
            "d": r.d if r else None,
            "resolution": r.resolution if r else None,
            "achieved": row.achieved,
            "matched": row.matched,
            "interpolated": row.interpolated,
            "achieved_below": b.ratio_below if b else None,
            "achieved_above": b.ratio_above if b else None,
            "recipe_below": _short_recipe(b.below) if b else "",
            "recipe_above": _short_recipe(b.above) if b else "",
            "macs": row.macs,
            "params": row.params,
            "macs_below": macs(b.below) if b else None,
            "macs_above": macs(b.above) if b else None,
            "params_below": cost(b.below).params if b else None,
            "params_above": cost(b.above).params if b else None,
            "effective_macs": row.effective_macs,
            "seeds": len(row.accuracies),
            "acc_mean": None if row.mean is None else 100 * row.mean,
            "acc_std": None if row.std is None else 100 * row.std,
            "acc_below": 100 * statistics.fmean(b.accuracies_below) if b and b.accuracies_below else None,
            "acc_above": 100 * statistics.fmean(b.accuracies_above) if b and b.accuracies_above else None,
            "margin_vs_efficientnet": None if m_eff is None else 100 * m_eff.value,
            "margin_stderr": None if m_eff is None or m_eff.stderr is None else 100 * m_eff.stderr,
            "gp_margin": None if m_gp is None else 100 * m_gp.value,
            "gp_margin_stderr": None if m_gp is None or m_gp.stderr is None else 100 * m_gp.stderr,
            "note": row.note,
        })
    return out


def margin_table(comparison: Comparison, strategy: str = "gp") -> list[dict]:
    """``strategy`` minus every other compared strategy, one dict per (baseline, ratio) plus
    one per baseline with ``target`` None for the mean over ratios: ``margin``/``stderr`` in
    percentage points (paired by seed), ``n`` paired seeds, ``matched``, and for the mean the
    ``ratios`` it covers."""
    out = []
    for baseline in comparison.baselines(strategy):
        for m in comparison.margins(baseline, strategy):
            out.append({"baseline": baseline, "target": m.ratio, "margin": 100 * m.value,
                        "stderr": None if m.stderr is None else 100 * m.stderr, "n": m.n, "matched": m.matched,
                        "ratios": (m.ratio,)})
        mean = comparison.mean_margin(baseline, strategy)
        if mean is not None:
            out.append({"baseline": baseline, "target": None, "margin": 100 * mean.value,
                        "stderr": None if mean.stderr is None else 100 * mean.stderr, "n": mean.n,
                        "matched": mean.matched, "ratios": mean.ratios})
    return out


def comparison_csv(comparison: Comparison) -> str:
    rows = comparison_table(comparison)
    buf = io.StringIO()
    fields = list(rows[0]) if rows else ["target", "strategy"]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def _fmt_acc(row: dict) -> str:
    if row["acc_mean"] is None:
        return "–"
    std = "" if row["acc_std"] is None else f" ± {row['acc_std']:.2f}"
    return f"{row['acc_mean']:.2f}{std}"


def _fmt_margin(value: float, stderr: float | None, matched: bool) -> str:
    se = "" if stderr is None else f" ± {stderr:.2f}"
    return f"{value:+.2f}{se}" + ("" if matched else " ⚠")


def _md_row_cells(row: dict, full: ComparisonRow) -> tuple[str, str, str, str, str]:
    """(recipe, px, achieved, MACs, params) cells of one table row; interpolated rows show both steps."""
    if row["r"] is None:
        return "–", "–", "–", "–", "–"
    if not row["interpolated"]:
        recipe = f"{row['r']:.3g}, {row['w']:.3g}, {row['d']:.3g} ({row['rules']})"
        achieved = f"{row['achieved']:.4f}" + ("" if row["matched"] else " ⚠")
        return (recipe, str(row["resolution"]), achieved, f"{row['macs'] / 1e6:.2f}M", f"{row['params'] / 1e6:.3f}M")
    lo, hi = full.bracket.below, full.bracket.above
    return (f"{lo.r:.3g}, {lo.w:.3g}, {lo.d:.3g} ↔ {hi.r:.3g}, {hi.w:.3g}, {hi.d:.3g} ({row['rules']})",
            f"{lo.resolution} ↔ {hi.resolution}",
            f"{row['achieved_below']:.4f} ↔ {row['achieved_above']:.4f} (interp.)",
            f"{row['macs_below'] / 1e6:.2f}M ↔ {row['macs_above'] / 1e6:.2f}M",
            f"{row['params_below'] / 1e6:.3f}M ↔ {row['params_above'] / 1e6:.3f}M")


def comparison_markdown(comparison: Comparison) -> str:
    """The per-ratio table, the GP-vs-EfficientNet margins, then the GP's margins over every
    other strategy (per ratio and the mean over ratios), as GitHub Markdown."""
    sym = "ms" if comparison.settings.budget == "latency" else "c"
    matched_what = "latency" if sym == "ms" else "FLOPs"
    lines = [
        f"| target {sym} | strategy | recipe (r, w, d) | px | achieved {sym} | MACs | params | top-1 % (mean ± std) | n "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, full in zip(comparison_table(comparison), comparison.rows):
        recipe, px, achieved, mac, params = _md_row_cells(row, full)
        acc = _fmt_acc(row) + (" (interp.)" if row["interpolated"] and row["acc_mean"] is not None else "")
        lines.append(f"| {row['target']:g} | {row['strategy']} | {recipe} | {px} | {achieved} | {mac} | {params} | "
                     f"{acc} | {row['seeds']} | {row['note'].replace('|', '/')} |")
    margins = comparison.margins("efficientnet")
    if margins:
        lines += ["", f"| target {sym} | GP − EfficientNet (pp) | ± stderr | matched {matched_what} |", "|---|---|---|---|"]
        for m in margins:
            se = "–" if m.stderr is None else f"{100 * m.stderr:.2f}"
            lines.append(f"| {m.ratio:g} | {100 * m.value:+.2f} | {se} | {'yes' if m.matched else 'no'} |")
    table = margin_table(comparison)
    if table:
        ratios = comparison.settings.ratios
        lines += ["", "GP − each strategy, top-1 points, paired by seed (mean of the per-seed differences ± "
                      f"their standard error; ⚠: {matched_what} not matched on one side; mean over the targets both "
                      "reach):",
                  "", "| strategy | " + " | ".join(f"{sym} = {c:g}" for c in ratios) + f" | mean over {sym} |",
                  "|---|" + "---|" * (len(ratios) + 1)]
        for baseline in comparison.baselines():
            cells = {e["target"]: e for e in table if e["baseline"] == baseline}
            row = [_fmt_margin(cells[c]["margin"], cells[c]["stderr"], cells[c]["matched"]) if c in cells else "–"
                   for c in ratios]
            mean = cells.get(None)
            if mean is None:
                row.append("–")
            else:
                over = (f"all {sym}" if len(mean["ratios"]) == len(ratios)
                        else f"{sym} = " + ", ".join(f"{c:g}" for c in mean["ratios"]))
                row.append(f"{_fmt_margin(mean['margin'], mean['stderr'], mean['matched'])} ({over}, n = {mean['n']})")
            lines.append(f"| {baseline} | " + " | ".join(row) + " |")
    if not comparison.complete:
        lines += ["", f"Partial: {comparison.cells_done} of {comparison.cells_total} training runs done."]
    return "\n".join(lines) + "\n"
