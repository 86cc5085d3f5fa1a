"""Independent, reproducible random streams derived from the one top-level ``seed``."""

from __future__ import annotations

import zlib

import numpy as np


def rng_for(seed: int, purpose: str) -> np.random.Generator:
    """A generator for one purpose (``"split"``, ``"noise"``, ...): same seed, same draws;
    different purposes never share a stream, so changing one stage's use of randomness
    leaves the others' draws unchanged."""
    return np.random.default_rng([seed, zlib.crc32(purpose.encode())])


def seed_for(seed: int, purpose: str) -> int:
    """An integer seed for one purpose (e.g. torch in round 3), derived like :func:`rng_for`."""
    return int(rng_for(seed, purpose).integers(2**31 - 1))
