"""Headless Chromium (Debian package `chromium`, scripts/install-chromium.sh)
as the tests and the README's screenshots use it: the DOM of a page after
it has rendered, or a PNG of it. No driver: one short-lived browser process
per call, each with a new empty profile."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

# Flags that work as root in a container: no sandbox (it needs user
# namespaces), no GPU, and nothing that reaches out to the network by itself.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
TIMEOUT = 60.0


def chromium_path() -> str | None:
    return shutil.which("chromium")


def _run(binary: str, args: list[str], url: str) -> bytes:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        done = subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited with {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout


def dump_dom(binary: str, url: str) -> str:
    """The page's DOM as Chromium rendered it, serialised."""
    return _run(binary, ["--dump-dom"], url).decode()


def screenshot(binary: str, url: str, png: Path, width: int = 1400, height: int = 1000) -> Path:
    """A PNG of the page's first `width` x `height` pixels."""
    _run(binary, [f"--screenshot={png}", f"--window-size={width},{height}"], url)
    if not png.is_file() or png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError(f"chromium wrote no PNG to {png}")
    return png
