"""Every bound the engine enforces, in one place, so the server, every SDK and other helpers
(the provider copying object variants, the Django views encoding them) can import the same
numbers. Documented in docs/ruleset-format.md ("Limits").

Parse time (``ParseError`` naming the JSON path):

- ``MAX_TOTAL_WEIGHT``: a rollout's weights sum to at most 2,147,483,647 (flagd's bound, a
  signed 32-bit integer), so flagd and every SDK compute the same buckets.
- ``MIN_INTEGER``/``MAX_INTEGER``: every integer in a document (integer variants, numbers
  inside object variants and condition values, metadata, ``version``) fits a signed 64-bit
  integer (what int64 and JavaScript-safe clients can hold; 10^400 used to be published).
  Non-finite numbers (NaN, Infinity, which Python's json reads) are rejected everywhere.
- ``MAX_OBJECT_DEPTH``: an object/array variant nests at most 64 containers (the value itself
  is level 1). Anything the parser accepts can be copied, frozen or JSON-encoded with
  recursion far below Python's limit (1000).
- ``MAX_REGEX_LENGTH``: a ``matches`` pattern has at most 1000 characters.
- ``MAX_CHAIN_DEPTH``: a chain of prerequisites (flag -> its prerequisite -> ...) or of
  segments naming segments holds at most 50 keys (the server's bound), because evaluation
  follows such chains by nested calls.

Evaluation time (the attribute is unusable: the condition is false, also when negated):

- ``MAX_MATCH_INPUT_LENGTH``: ``matches`` reads at most 16,384 characters.
- ``MAX_SEMVER_LENGTH``: semver operators read at most 256 characters.
- ``MAX_ADDRESS_LENGTH``: ``in_cidr`` reads at most 128 characters (an IPv6 address with a
  zone is far shorter; ``ipaddress`` spent milliseconds rejecting a 60,000-character value).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_ADDRESS_LENGTH",
    "MAX_CHAIN_DEPTH",
    "MAX_INTEGER",
    "MAX_MATCH_INPUT_LENGTH",
    "MAX_OBJECT_DEPTH",
    "MAX_REGEX_LENGTH",
    "MAX_SEMVER_LENGTH",
    "MAX_TOTAL_WEIGHT",
    "MIN_INTEGER",
]

MAX_TOTAL_WEIGHT: Final = 2**31 - 1
MIN_INTEGER: Final = -(2**63)
MAX_INTEGER: Final = 2**63 - 1
MAX_OBJECT_DEPTH: Final = 64
MAX_REGEX_LENGTH: Final = 1000
MAX_MATCH_INPUT_LENGTH: Final = 16_384
MAX_SEMVER_LENGTH: Final = 256
MAX_ADDRESS_LENGTH: Final = 128
MAX_CHAIN_DEPTH: Final = 50
