"""Seeded numpy generators whose complete state travels in events.

A job's generator is advanced only by bandit predictions. Its state, including
PCG64's buffered 32-bit half-word, is recorded after every draw so that a replay
restores it instead of drawing again. The 128-bit integers are kept as decimal
strings so that every JSON reader (not only Python's) keeps them exact.
"""

from typing import Any

import numpy as np

GeneratorState = dict[str, Any]


def seeded_generator_state(seed: int) -> GeneratorState:
    """State of ``numpy.random.default_rng(seed)`` before any draw."""
    return generator_state(np.random.default_rng(seed))


def generator_state(generator: np.random.Generator) -> GeneratorState:
    state = generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": str(state["state"]["state"]),
        "inc": str(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


# Seeds the throw-away initial state of a generator about to be restored. Without one,
# PCG64 would draw fresh entropy from the operating system first, which costs twice as
# much and is a global source of randomness the domain has no business reading.
_PLACEHOLDER_SEED = np.random.SeedSequence(0)


def restore_generator(state: GeneratorState) -> np.random.Generator:
    bit_generator = np.random.PCG64(_PLACEHOLDER_SEED)
    bit_generator.state = {
        "bit_generator": state["bit_generator"],
        "state": {"state": int(state["state"]), "inc": int(state["inc"])},
        "has_uint32": state["has_uint32"],
        "uinteger": state["uinteger"],
    }
    return np.random.Generator(bit_generator)
