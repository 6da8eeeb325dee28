"""Progressive delivery and experiments.

The pure parts (``stats``, ``states``, ``schedule``, ``guardrails``, ``metrics``,
``prometheus``, ``charts``) import neither the ORM nor settings, so they can be unit tested
and reused by the simulation; ``controller``, ``events_source``, ``experiments`` and
``tasks`` are the Django integration. Nothing is imported eagerly here: importing
``flagapp.rollouts`` must stay cheap and must not need the app registry.
"""

__all__: list[str] = []
