"""governance models."""

__all__: list[str] = []
