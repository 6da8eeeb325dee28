"""Sticky percentage bucketing, compatible with flagd's ``fractional`` operator (version 2).

flagd hashes ``flag key + targeting key`` with 32-bit MurmurHash3 (seed 0, unsigned) and maps
the hash onto the total weight with ``(h * total) >> 32``. Using the same arithmetic means a
flag exported to flagd buckets every user identically, and it has the property rollouts rely
on: a variant is served iff ``h < cumulative_fraction * 2**32``, so raising a percentage only
ever adds users. See docs/bucketing.md for test vectors.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate

import mmh3

__all__ = ["bucket", "choose", "cumulative", "hash32"]


def hash32(salt: str, bucket_value: str) -> int:
    """Unsigned 32-bit MurmurHash3 (seed 0) of the UTF-8 bytes of ``salt + bucket_value``."""
    return int(mmh3.hash(salt + bucket_value, 0, False))


def bucket(salt: str, bucket_value: str, total_weight: int) -> int:
    """The bucket in ``[0, total_weight)`` this value falls into."""
    return (hash32(salt, bucket_value) * total_weight) >> 32


def cumulative(weights: Sequence[int]) -> tuple[int, ...]:
    """Running totals of ``weights``: the upper (exclusive) bucket bound of each variant."""
    return tuple(accumulate(weights))


def choose(salt: str, bucket_value: str, weights: Sequence[int]) -> int:
    """Index of the variant served: the first whose cumulative weight exceeds the bucket.

    Zero-weight variants are never chosen (their cumulative bound equals the previous one).
    """
    bounds = cumulative(weights)
    return bisect_right(bounds, bucket(salt, bucket_value, bounds[-1]))
