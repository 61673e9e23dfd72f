"""Pareto fronts and NSGA-III selection on hand-made point sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from _fit_fixtures import synthetic_trials
from tinyscale.fit.pareto import front_ranks, reference_directions, select
from tinyscale.space.recipe import Recipe
from tinyscale.study.trial import Trial

RECIPE = Recipe(base_resolution=32, num_classes=10)


def trial(number: int, macs: int, accuracy: float | None, state: str = "completed") -> Trial:
    return Trial(number=number, recipe=RECIPE, state=state, macs=macs, params=1, ratio=macs / 1e6,
                 accuracy=accuracy)


def test_front_ranks_of_a_hand_made_set():
    # Minimise both. A, B, C trade off; D is beaten by A (and B); E by B; F by D and E; G == B.
    points = np.array([[0, 3], [1, 1], [3, 0], [1, 3], [2, 2], [3, 3], [1, 1]], dtype=float)
    assert front_ranks(points).tolist() == [1, 1, 1, 2, 2, 3, 1]


def test_reference_directions_span_the_simplex():
    dirs = reference_directions(5)
    assert np.allclose(dirs.sum(1), 1.0)
    assert dirs[0].tolist() == [0.0, 1.0] and dirs[-1].tolist() == [1.0, 0.0]
    with pytest.raises(ValueError):
        reference_directions(0)


def test_whole_fronts_are_taken_while_they_fit():
    # Front 1: (1M, .5) (2M, .6) (4M, .7); front 2: each shifted to lower accuracy; front 3: worse still.
    trials = [trial(0, 1_000_000, 0.5), trial(1, 2_000_000, 0.6), trial(2, 4_000_000, 0.7),
              trial(3, 1_000_000, 0.4), trial(4, 2_000_000, 0.5), trial(5, 4_000_000, 0.6),
              trial(6, 4_000_000, 0.1)]
    sel = select(trials, k=10)
    assert [e.rank for e in sel.entries] == [1, 1, 1, 2, 2, 2, 3]
    assert all(e.selected for e in sel.entries)
    sel = select(trials, k=4)
    assert [e.selected for e in sel.entries[:3]] == [True, True, True]
    assert sum(e.selected for e in sel.entries[3:6]) == 1
    assert not sel.entries[6].selected
    assert "filled by earlier fronts" in sel.entries[6].reason
    assert [t.number for t in sel.front] == [0, 1, 2]


def test_niching_spreads_the_selection_over_the_front():
    # One concave front: a tight cluster of 11 cheap models and 10 spread over the rest.
    xs = np.concatenate([np.linspace(0.0, 0.05, 11), np.linspace(0.1, 1.0, 10)])
    trials = [trial(i, int(1e6 * math.exp(3 * x)), 0.2 + 0.7 * math.sqrt(x)) for i, x in enumerate(xs)]
    sel = select(trials, k=5)
    assert all(e.rank == 1 for e in sel.entries)
    chosen = sorted(t.number for t in sel.selected)
    assert len(chosen) == 5
    assert 0 in chosen and 20 in chosen  # both ends of the front
    assert sum(n <= 10 for n in chosen) <= 2  # the cluster does not take the slots
    spread = [n for n in chosen if n > 10]
    assert len(spread) >= 3
    assert select(trials, k=5).to_rows() == sel.to_rows()  # deterministic
    for e in sel.entries:
        assert e.niche is not None and e.reason


def test_unusable_trials_are_skipped_and_bad_input_is_refused():
    trials = [trial(0, 1_000_000, 0.5), trial(1, 2_000_000, None), trial(2, 3_000_000, float("nan")),
              trial(3, 4_000_000, None, state="failed")]
    sel = select(trials, k=3)
    assert [e.number for e in sel.entries] == [0]
    assert [n for n, _ in sel.skipped] == [1, 2, 3]
    with pytest.raises(ValueError, match="no completed trials"):
        select(trials[1:], k=3)
    with pytest.raises(ValueError, match="positive integer"):
        select(trials, k=0)


def test_selection_on_a_synthetic_study_keeps_the_front_and_its_range():
    trials = synthetic_trials(n_good=24, n_decoys=30)
    sel = select(trials, k=20)
    front = sel.front
    assert {t.number for t in front} == set(range(24))  # decoys are dominated by construction
    chosen = sel.selected
    assert len(chosen) == 20 and all(sel.entry(t.number).rank == 1 for t in chosen)
    assert chosen[0].number == front[0].number and chosen[-1].number == front[-1].number
