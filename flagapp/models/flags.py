"""flags models."""

__all__: list[str] = []
