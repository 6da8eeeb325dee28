"""snapshots models."""

__all__: list[str] = []
