"""Change notifications: webhooks (signed JSON), Slack, and the owners' email.

- :mod:`.events` — event types and their JSON payloads;
- :mod:`.dispatcher` — the one receiver of flagapp's notification signals: who is told what
  (stored events and deliveries);
- :mod:`.delivery` — sending one delivery (bounded HTTP, email), retries with backoff,
  the periodic sweep, replay;
- :mod:`.signing` — the ``Flagapp-Signature`` header (sign and verify);
- :mod:`.formatting` — the Slack and email renderings.

docs/observability.md, "Webhooks and notifications", is the user guide.
"""

from __future__ import annotations

from .events import EVENT_TYPES
from .signing import SignatureError, signature_header, verify

__all__ = ["EVENT_TYPES", "SignatureError", "signature_header", "verify"]
