"""Sticky percentage bucketing, compatible with flagd's ``fractional`` operator (version 2).

The one home of the bucketing arithmetic: the compiled closures (compiler.py) and the
generated flag functions (codegen.py) take their hash function and thresholds from here.

flagd hashes ``flag key + targeting key`` with 32-bit MurmurHash3 (seed 0, unsigned) and maps
the hash onto the total weight with ``(h * total) >> 32``. Using the same arithmetic means a
flag exported to flagd buckets every user identically, and it has the property rollouts rely
on: a variant is served iff ``h < cumulative_fraction * 2**32``, so raising a percentage only
ever adds users. See docs/bucketing.md for test vectors.

What is hashed is always the UTF-8 *bytes* of ``salt + bucket_value``; a ``str`` never reaches
the C extension (mmh3 5.3.1 segfaulted on a ``str`` holding a lone surrogate, which JSON
``"\\ud800"`` produces). A value with no UTF-8 form is an unusable bucket value: the reference
functions raise ``UnusableBucketValue``, compiled rollouts answer INVALID_CONTEXT.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Final

import mmh3

from .exceptions import UnusableBucketValue
from .limits import MAX_TOTAL_WEIGHT

__all__ = [
    "MAX_TOTAL_WEIGHT",
    "UnusableBucketValue",
    "bucket",
    "choose",
    "cumulative",
    "digest",
    "hash32",
    "key_bytes",
    "thresholds",
]

#: ``digest(data: bytes, seed) -> int``: unsigned 32-bit MurmurHash3 of *bytes*. This mmh3
#: function refuses ``str`` ("Strings must be encoded before hashing"), so no text can reach
#: the C code by mistake. The compiled and generated code call it directly.
digest: Final[Callable[[bytes, int], int]] = mmh3.mmh3_32_uintdigest


def key_bytes(salt: str, bucket_value: str) -> bytes:
    """The bytes that are hashed: UTF-8 of ``salt + bucket_value``.

    Raises ``UnusableBucketValue`` when the text has no UTF-8 form (a lone surrogate).
    """
    try:
        return (salt + bucket_value).encode("utf-8")
    except UnicodeEncodeError:
        raise UnusableBucketValue(
            "the bucket value is not valid Unicode text (it contains a lone surrogate)"
        ) from None


def hash32(salt: str, bucket_value: str) -> int:
    """Unsigned 32-bit MurmurHash3 (seed 0) of the UTF-8 bytes of ``salt + bucket_value``."""
    return digest(key_bytes(salt, bucket_value), 0)


def bucket(salt: str, bucket_value: str, total_weight: int) -> int:
    """The bucket in ``[0, total_weight)`` this value falls into."""
    return (hash32(salt, bucket_value) * total_weight) >> 32


def cumulative(weights: Sequence[int]) -> tuple[int, ...]:
    """Running totals of ``weights``: the upper (exclusive) bucket bound of each variant."""
    return tuple(accumulate(weights))


def thresholds(weights: Sequence[int]) -> tuple[int, ...]:
    """Hash thresholds: variant ``i`` is served iff ``thresholds[i-1] <= h < thresholds[i]``,
    i.e. ``bisect_right(thresholds(weights), h)`` is ``choose()`` without the bucket step.

    ``(h * total) >> 32 < bound`` holds iff ``h < ceil(bound * 2**32 / total)``, so comparing
    the hash with these precomputed numbers gives exactly the flagd bucket, one multiplication
    fewer per evaluation. This is what compiled rollouts use.
    """
    bounds = cumulative(weights)
    total = bounds[-1]
    return tuple(-(-(b << 32) // total) for b in bounds)


def choose(salt: str, bucket_value: str, weights: Sequence[int]) -> int:
    """Index of the variant served: the first whose cumulative weight exceeds the bucket.

    Zero-weight variants are never chosen (their cumulative bound equals the previous one).
    """
    bounds = cumulative(weights)
    return bisect_right(bounds, bucket(salt, bucket_value, bounds[-1]))
