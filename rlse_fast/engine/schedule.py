"""Learning-rate schedules of PULSE (multipliers of the base learning rate at step x of `steps`)."""
from __future__ import annotations


def linear1cycledrop(x: int, steps: int) -> float:
    """Linear ramp 0.1 -> 1 -> 0.1 over the first 90% of the steps, then down to 0.001."""
    if x < 0.9 * steps:
        return (9 * (1 - abs(x / (0.9 * steps) - 1 / 2) * 2) + 1) / 10
    return 1 / 10 + (x - 0.9 * steps) / (0.1 * steps) * (1 / 1000 - 1 / 10)


def linear1cycle(x: int, steps: int) -> float:
    return (9 * (1 - abs(x / steps - 1 / 2) * 2) + 1) / 10


def fixed(x: int, steps: int) -> float:
    return 1.0


SCHEDULES = {"linear1cycledrop": linear1cycledrop, "linear1cycle": linear1cycle, "fixed": fixed}
