"""How deptflow launches headless Chromium: the browser tests and docs/screenshots.py share it."""

from __future__ import annotations

import os
import shutil

DEFAULT_CHROMIUM = "/usr/bin/chromium"
#: Debian's chromium as root in a container, with nothing that phones home during a test
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium_path() -> str:
    """DEPTFLOW_CHROMIUM, else ``chromium`` on PATH, else Debian's path."""
    return os.environ.get("DEPTFLOW_CHROMIUM") or shutil.which("chromium") or DEFAULT_CHROMIUM
