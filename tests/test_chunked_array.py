"""ChunkedArray behaves as a plain array does, and its copies are independent."""

import random
from array import array

import pytest

from domain.chunked_array import CHUNK, ChunkedArray


def test_every_operation_matches_a_plain_array_across_chunk_borders() -> None:
    draw = random.Random(7)
    plain, chunked = array("q"), ChunkedArray("q")
    for step in range(3 * CHUNK + 50):
        action = draw.random()
        if action < 0.8 or not plain:
            plain.append(step)
            chunked.append(step)
        elif action < 0.9:
            index = draw.randrange(len(plain))
            plain[index] = -step
            chunked[index] = -step
        else:
            index = draw.randrange(len(plain) + 1)
            plain.insert(index, step)
            chunked.insert(index, step)
    assert len(chunked) == len(plain) > 2 * CHUNK
    assert chunked.to_array() == plain and chunked.tolist() == plain.tolist() and list(chunked) == plain.tolist()
    assert [chunked[i] for i in (0, CHUNK - 1, CHUNK, len(plain) - 1, -1, -CHUNK - 1)] == [
        plain[i] for i in (0, CHUNK - 1, CHUNK, len(plain) - 1, -1, -CHUNK - 1)
    ]
    assert chunked.count(plain[5]) == plain.count(plain[5])
    assert ChunkedArray("q", plain) == chunked
    with pytest.raises(IndexError):
        chunked[len(plain)]


def test_a_copy_and_its_original_never_see_each_others_writes() -> None:
    original = ChunkedArray("d", range(2 * CHUNK + 10))
    clone = original.copy()
    clone[3] = -1.0  # in a shared full chunk
    clone[2 * CHUNK + 1] = -2.0  # in the tail
    clone.append(99.0)
    clone.insert(CHUNK + 2, 55.0)
    original[4] = -4.0
    original.append(77.0)
    assert original.tolist() == [*[float(i) for i in range(4)], -4.0, *[float(i) for i in range(5, 2 * CHUNK + 10)], 77.0]
    expected = [float(i) for i in range(2 * CHUNK + 10)]
    expected[3], expected[2 * CHUNK + 1] = -1.0, -2.0
    expected.append(99.0)
    expected.insert(CHUNK + 2, 55.0)
    assert clone.tolist() == expected
