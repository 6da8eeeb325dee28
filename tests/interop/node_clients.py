"""The published npm OpenFeature clients of ``tests/interop/node`` (not a test module).

``node_modules()`` runs ``npm ci`` of the committed lockfile (versions pinned, scripts off)
once per lockfile content, into ``~/.cache/flagapp-ofrep-node/<hash>`` (``XDG_CACHE_HOME``);
``bundle()`` builds the browser page's script with the pinned esbuild (no CDN). Used by
tests/flagapp/sdk/test_ofrep_node.py and tests/browser/test_web_sdk_browser.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["NODE_DIR", "bundle", "node_available", "node_modules"]

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def node_modules() -> Path:
    """The directory holding ``node_modules`` of the committed lockfile."""
    lock = (NODE_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock + (NODE_DIR / "package.json").read_bytes()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    target = base / "flagapp-ofrep-node" / digest
    if not (target / "node_modules" / ".package-lock.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(NODE_DIR / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=target,
            check=True,
            capture_output=True,
            timeout=300,
        )
    # The runners' shared part (evaluate*.cjs require it from beside them): copied on every
    # call, so an edited harness is never stale in the cache keyed by the lockfile.
    shutil.copy(NODE_DIR / "harness.cjs", target / "harness.cjs")
    return target


def bundle(entry: str, out: Path) -> Path:
    """``esbuild --bundle`` of ``tests/interop/node/<entry>`` into ``out`` (an IIFE)."""
    target = node_modules()
    shutil.copy(NODE_DIR / entry, target / entry)
    subprocess.run(
        [
            str(target / "node_modules" / ".bin" / "esbuild"),
            entry,
            "--bundle",
            "--format=iife",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        cwd=target,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out
