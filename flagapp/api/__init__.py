"""The management REST API (DRF) mounted under ``/api/v1/``.

Every write goes through :mod:`flagapp.services`, so the API, the admin and the commands apply
the same validation, governance and history rules. The views configure authentication,
permissions, pagination and the schema themselves, so a host project needs no
``REST_FRAMEWORK`` setting for the API to behave as documented in ``docs/api.md``.
"""

__all__: list[str] = []
