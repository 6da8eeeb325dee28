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
    "DEFAULT_HASH",
    "FLAGD_CBOR",
    "HASH_ALGORITHMS",
    "MAX_TOTAL_WEIGHT",
    "MURMUR3_CONCAT",
    "UnusableBucketValue",
    "bucket",
    "cbor_text",
    "choose",
    "cumulative",
    "digest",
    "hash32",
    "key_bytes",
    "key_encoder",
    "thresholds",
]

#: Hash algorithms a rollout can name (``"hash"`` in the ruleset). ``murmur3-concat`` is the
#: original form and the default, so no existing rollout is reshuffled; ``flagd-cbor`` is
#: flagd's form since its hashing ADR (flagd-core 2.x): MurmurHash3 of the canonical CBOR
#: encoding of the array ``[salt, bucket_value]`` (flagd's shorthand ``[flagKey, targetingKey]``).
MURMUR3_CONCAT: Final = "murmur3-concat"
FLAGD_CBOR: Final = "flagd-cbor"
DEFAULT_HASH: Final = MURMUR3_CONCAT
HASH_ALGORITHMS: Final = (MURMUR3_CONCAT, FLAGD_CBOR)

#: ``digest(data: bytes, seed) -> int``: unsigned 32-bit MurmurHash3 of *bytes*. This mmh3
#: function refuses ``str`` ("Strings must be encoded before hashing"), so no text can reach
#: the C code by mistake. The compiled and generated code call it directly.
digest: Final[Callable[[bytes, int], int]] = mmh3.mmh3_32_uintdigest


def _cbor_head(major: int, length: int) -> bytes:
    """A CBOR (RFC 8949) data-item head in its shortest form, as canonical encoding requires."""
    if length < 24:
        return bytes((major << 5 | length,))
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes((major << 5 | info,)) + length.to_bytes(size, "big")
    raise ValueError("CBOR length out of range")  # pragma: no cover - > 2**64 bytes


def cbor_text(text: str) -> bytes:
    """CBOR text string (major type 3): shortest-form length head + UTF-8 bytes.

    Raises ``UnicodeEncodeError`` for text with no UTF-8 form (a lone surrogate).
    """
    data = text.encode("utf-8")
    return _cbor_head(3, len(data)) + data


def key_encoder(algorithm: str, salt: str) -> Callable[[str], bytes]:
    """``encode(bucket_value) -> bytes`` to hash for ``algorithm``; raises ``UnicodeEncodeError``
    for a value with no UTF-8 form. The salt part is encoded once, here.

    - ``murmur3-concat``: UTF-8 of ``salt + bucket_value``.
    - ``flagd-cbor``: CBOR array of two text strings ``[salt, bucket_value]`` (head ``0x82``),
      byte for byte what flagd-core 2.x hashes (``cbor2.dumps([flagKey, targetingKey],
      canonical=True)``) when the salt is the flag key.
    """
    if algorithm == MURMUR3_CONCAT:

        def concat(bucket_value: str) -> bytes:
            return (salt + bucket_value).encode()

        return concat
    if algorithm == FLAGD_CBOR:
        prefix = b"\x82" + cbor_text(salt)

        def cbor_pair(bucket_value: str) -> bytes:
            return prefix + cbor_text(bucket_value)

        return cbor_pair
    raise ValueError(f"unknown hash algorithm {algorithm!r}")


def key_bytes(salt: str, bucket_value: str, algorithm: str = DEFAULT_HASH) -> bytes:
    """The bytes that are hashed (by default UTF-8 of ``salt + bucket_value``).

    Raises ``UnusableBucketValue`` when the text has no UTF-8 form (a lone surrogate).
    """
    try:
        return key_encoder(algorithm, salt)(bucket_value)
    except UnicodeEncodeError:
        raise UnusableBucketValue(
            "the bucket value is not valid Unicode text (it contains a lone surrogate)"
        ) from None


def hash32(salt: str, bucket_value: str, algorithm: str = DEFAULT_HASH) -> int:
    """Unsigned 32-bit MurmurHash3 (seed 0) of ``key_bytes`` (by default the UTF-8 bytes of
    ``salt + bucket_value``)."""
    return digest(key_bytes(salt, bucket_value, algorithm), 0)


def bucket(salt: str, bucket_value: str, total_weight: int, algorithm: str = DEFAULT_HASH) -> int:
    """The bucket in ``[0, total_weight)`` this value falls into."""
    return (hash32(salt, bucket_value, algorithm) * total_weight) >> 32


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


def choose(
    salt: str, bucket_value: str, weights: Sequence[int], algorithm: str = DEFAULT_HASH
) -> int:
    """Index of the variant served: the first whose cumulative weight exceeds the bucket.

    Zero-weight variants are never chosen (their cumulative bound equals the previous one).
    """
    bounds = cumulative(weights)
    return bisect_right(bounds, bucket(salt, bucket_value, bounds[-1], algorithm))
