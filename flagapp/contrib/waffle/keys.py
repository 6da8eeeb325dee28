"""Waffle names → flagapp keys, the one mapping the importer and the compatibility layer share.

Why a pure function and not a lookup table: the compatibility layer answers
``waffle.flag_is_active(request, "name")`` on every request, so finding the flagapp key
must cost nothing (no query, no stored mapping that could drift). Waffle's three kinds
have separate name spaces (a Flag and a Switch may share a name), so each kind gets its
own prefix:

====================  =======================  ================================
waffle object         name                     flagapp key
====================  =======================  ================================
Flag                  ``new_checkout``         ``waffle.new_checkout``
Switch                ``maintenance``          ``waffle-switch.maintenance``
Sample                ``log-sampling``         ``waffle-sample.log-sampling``
Flag                  ``checkout.v2``          ``waffle.checkout.v2``
Flag                  ``New Checkout!``        ``waffle.new-checkout-<8 hex>``
====================  =======================  ================================

A name that is already a valid key part (lowercase letters and digits joined by single
``-``/``_``, at most three dot-separated parts) is kept as is. Any other name is slugified
and suffixed with the first 8 hex digits of the SHA-256 of the exact name, so two names
that slugify alike (``"New Checkout"``, ``"new-checkout"``) never share a key.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["PREFIXES", "flag_key", "key_for", "norm_test_name", "sample_key", "switch_key"]

#: waffle model → key prefix (the first part of every imported key).
PREFIXES: dict[str, str] = {"flag": "waffle", "switch": "waffle-switch", "sample": "waffle-sample"}

_PART = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"
_KEEP = re.compile(rf"{_PART}(?:\.{_PART}){{0,2}}")
_MAX_KEPT = 150


def key_for(kind: str, name: str) -> str:
    """The flagapp key of waffle ``kind`` (``flag``/``switch``/``sample``) named ``name``."""
    prefix = PREFIXES[kind]
    if len(name) <= _MAX_KEPT and _KEEP.fullmatch(name):
        return f"{prefix}.{name}"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60].strip("-") or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{prefix}.{slug}-{digest}"


def flag_key(name: str) -> str:
    return key_for("flag", name)


def switch_key(name: str) -> str:
    return key_for("switch", name)


def sample_key(name: str) -> str:
    return key_for("sample", name)


def norm_test_name(name: str) -> str:
    """How testing-mode parameters name a flag: case-insensitive, ``_`` and ``-`` alike.

    Waffle reads ``?dwft_<name>=1`` and the cookie by the exact name but the header
    ``DWFT-<name>`` with ``_`` written as ``-`` (HTTP header names are case-insensitive),
    so the header cannot tell ``a_b`` from ``A-B``; one normal form for all three
    sources keeps one context attribute per flag.
    """
    return name.replace("_", "-").lower()
