"""Argument checks for the engine's public functions: a wrong value is an error where it
comes in (TypeError or ValueError naming the argument), never replaced by another."""

from __future__ import annotations

import numbers


def number(name: str, value: object) -> float:
    """`value` as a float; TypeError for anything but a real number (True is no strength)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


def whole_number(name: str, value: object) -> int:
    """`value` as an int; TypeError for floats (3.5, NaN), bools and anything else."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def require(ok: bool, name: str, allowed: str, value: object) -> None:
    """ValueError "`name` must be `allowed`, got `value`" unless `ok`."""
    if not ok:
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
