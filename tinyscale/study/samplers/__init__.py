"""Where a study's next recipes come from: one `Sampler` interface (`base`), one module a sampler.

- ``sobol`` (`sobol.StreamSampler`): the seeded space-filling stream, trial k = recipe k.
- ``botorch`` (`botorch.BotorchSampler`): the stream's first recipes, then an acquisition on the
  study's accuracy surface.

A new sampler is a module here and one entry in `make_sampler`.
"""

from __future__ import annotations

from tinyscale.study.samplers.base import SAMPLERS, Sampler, check_space
from tinyscale.study.trial import StudyConfig


def make_sampler(config: StudyConfig) -> Sampler:
    """The sampler the config names (checked first: ValueError on bad options)."""
    check_space(config)
    if config.sampler == "botorch":
        from tinyscale.study.samplers.botorch import BotorchSampler  # botorch loads only when a study asks for it

        return BotorchSampler(config)
    from tinyscale.study.samplers.sobol import StreamSampler

    return StreamSampler(config)


__all__ = ["SAMPLERS", "Sampler", "check_space", "make_sampler"]
