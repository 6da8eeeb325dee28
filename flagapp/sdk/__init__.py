"""The SDK and OFREP server surfaces: ``/sdk/v1/ruleset``, ``/sdk/v1/stream``,
``/sdk/v1/events`` and ``/ofrep/v1/evaluate/flags[/<key>]`` (docs/protocol.md, docs/api.md).

Submodules: ``keys`` (SDK key creation, revocation, cached lookup), ``auth`` (key + rate
limit for a request), ``ratelimit``, ``notifier`` (snapshot announcements across
processes), ``views`` (SDK API), ``ofrep`` (OFREP), ``events`` (event batch validation).
"""

__all__: list[str] = []
