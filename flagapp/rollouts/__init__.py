"""Progressive delivery and experiments (docs/rollouts.md, docs/experiments.md).

Pure parts, importing neither the ORM nor settings (unit-tested alone, reused by the
simulation): ``stats`` (z-test, intervals, sample size, SRM), ``states`` (the state
machine), ``schedule`` (steps and serve fragments), ``guardrails`` (judgement),
``metrics`` (the metric-source protocol), ``prometheus`` (a Prometheus source) and
``charts`` (SVG).

Django integration: ``controller`` (the only writer of plan state; steps go through
``flagapp.services``), ``events_source`` (guardrail numbers from stored SDK events),
``experiments`` (analysis), ``views`` (charts from the database), ``tasks`` (Celery) and
``simulation`` (``manage.py flagapp_simulate_rollout``).

Nothing is imported eagerly here: importing ``flagapp.rollouts`` stays cheap and needs no
app registry.
"""

__all__: list[str] = []
