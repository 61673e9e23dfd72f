"""The ``sobol`` sampler: trial number k is recipe k of the config's seeded stream."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from tinyscale.space.recipe import Recipe
from tinyscale.study.samplers.base import Proposal, ProposalBatch, iter_recipes
from tinyscale.study.trial import StudyConfig, Trial


class StreamSampler:
    """Trial number k is recipe k of the config's seeded stream (`iter_recipes`)."""

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self._stream = iter_recipes(config)
        self._recipes: list[Recipe] = []

    def recipe(self, index: int) -> Recipe:
        """Recipe ``index`` of the stream; ValueError when the space runs out before it."""
        while len(self._recipes) <= index:
            self._recipes.append(next(self._stream))
        return self._recipes[index]

    def propose(self, trials: Sequence[Trial], numbers: Sequence[int],
                log: Callable[[str], None] = print) -> ProposalBatch:
        start = time.perf_counter()
        proposals: list[Proposal] = []
        stop = None
        try:
            for number in numbers:
                proposals.append(Proposal(number, self.recipe(number), self.config.sampling))
        except ValueError as exc:  # the window holds no more distinct networks
            stop = str(exc)
        return ProposalBatch(tuple(proposals), time.perf_counter() - start, stop)
