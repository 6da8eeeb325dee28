"""sdk models."""

__all__: list[str] = []
