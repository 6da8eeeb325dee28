"""events models."""

__all__: list[str] = []
