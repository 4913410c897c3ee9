"""Learning-rate schedules: warmup-stable-decay (WSD) and cosine.

Both start with a linear warmup. WSD (Hägele et al. 2024; MiniCPM, Hu et al. 2024) holds the peak
and decays linearly to the minimum over the final `decay_fraction` of the run; cosine (Loshchilov
& Hutter 2017) decays from the end of warmup to the end of the run.

The step where decay starts and where it ends are fixed when the run starts and stored in every
checkpoint: a resumed run rebuilds its schedule from the checkpoint, so changing `--max-steps`
(to extend a run) or any schedule flag on resume cannot move the decay that is under way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from smelt.training.config import TrainConfig


@dataclass
class LRSchedule:
    kind: str  # 'wsd' | 'cosine'
    peak_lr: float
    min_lr: float
    warmup_steps: int
    decay_start: int  # first step of the decay (cosine: end of warmup)
    decay_end: int  # the step at which min_lr is reached (and kept)

    @classmethod
    def from_config(cls, config: TrainConfig) -> LRSchedule:
        total = config.max_steps
        warmup = config.resolved_warmup_steps
        if config.schedule == "wsd":
            decay_start = max(warmup, total - math.ceil(config.decay_fraction * total))
        else:
            decay_start = warmup
        return cls(
            kind=config.schedule,
            peak_lr=config.lr,
            min_lr=config.lr * config.min_lr_ratio,
            warmup_steps=warmup,
            decay_start=decay_start,
            decay_end=total,
        )

    def lr_at(self, step: int) -> float:
        """Learning rate of the optimizer step that follows `step` completed steps."""
        if step < self.warmup_steps:
            return self.peak_lr * (step + 1) / self.warmup_steps
        if step < self.decay_start:
            return self.peak_lr
        span = max(1, self.decay_end - self.decay_start)
        progress = min(1.0, (step - self.decay_start) / span)
        if self.kind == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            factor = 1.0 - progress
        return self.min_lr + (self.peak_lr - self.min_lr) * factor

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the schedule of the run being resumed (fixed when it started)."""
        for item in fields(self):
            setattr(self, item.name, state[item.name])
