"""A from-scratch MurmurHash3 x86_32, written from the published algorithm.

Why: the bucketing tests must not trust the code they test. This implementation shares no
code with the engine or the mmh3 C extension, so agreement between the two is evidence
that the engine buckets exactly as flagd does (flagd uses the same function).
"""

from __future__ import annotations

_C1 = 0xCC9E2D51
_C2 = 0x1B873593
_MASK = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """Unsigned 32-bit MurmurHash3 (x86 variant) of ``data``."""
    h = seed & _MASK
    n_blocks = len(data) // 4
    for i in range(n_blocks):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _C1) & _MASK
        k = _rotl(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
        h = _rotl(h, 13)
        h = (h * 5 + 0xE6546B64) & _MASK
    tail = data[4 * n_blocks :]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * _C1) & _MASK
        k = _rotl(k, 15)
        k = (k * _C2) & _MASK
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    h ^= h >> 16
    return h


def reference_bucket(salt: str, key: str, total: int) -> int:
    """flagd fractional v2 bucket, computed without the engine."""
    return (murmur3_32((salt + key).encode("utf-8")) * total) >> 32


def reference_variant(salt: str, key: str, weights: list[tuple[str, int]]) -> str:
    """First variant whose cumulative weight exceeds the bucket."""
    total = sum(w for _, w in weights)
    b = reference_bucket(salt, key, total)
    acc = 0
    for name, w in weights:
        acc += w
        if b < acc:
            return name
    raise AssertionError("unreachable: bucket < total")
