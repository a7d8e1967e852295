"""Node tools for tests and benchmarks: html-validate and the official MJML compiler.

They are pinned in bench/node/package.json and package-lock.json and installed into
bench/node/node_modules with `npm ci` the first time something asks for them (again
when the lock file changes). Without Node.js and npm the caller fails with the hint to
install them: a missing tool never turns into a skipped test.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_DIR = ROOT / "bench" / "node"
BIN_DIR = NODE_DIR / "node_modules" / ".bin"
LOCK = NODE_DIR / "package-lock.json"
INSTALLED = NODE_DIR / "node_modules" / ".package-lock.json"  # npm writes it on install
INSTALL_HINT = "install them: sudo apt-get install -y nodejs npm"


class NodeToolError(RuntimeError):
    """A Node tool is missing and cannot be installed."""


def _installed_matches_lock() -> bool:
    return INSTALLED.is_file() and INSTALLED.stat().st_mtime >= LOCK.stat().st_mtime


def npm_ci() -> None:
    """`npm ci` in bench/node unless node_modules already matches the lock file."""
    if _installed_matches_lock():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise NodeToolError(
            f"the tests and benchmarks need Node.js and npm to install the tools pinned in "
            f"{NODE_DIR / 'package.json'} (html-validate, mjml); {INSTALL_HINT}"
        )
    with (NODE_DIR / "package.json").open() as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another process may be installing too
        if _installed_matches_lock():
            return
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise NodeToolError(
                f"`npm ci` in {NODE_DIR} failed (exit {result.returncode}); it needs the npm "
                f"registry. Its output:\n{result.stdout}{result.stderr}"
            )


def node_tool(name: str) -> Path:
    """The path of `name` (e.g. "html-validate", "mjml") from bench/node, installed on demand."""
    npm_ci()
    path = BIN_DIR / name
    if not path.exists():
        raise NodeToolError(
            f"{name} is not in {BIN_DIR} after `npm ci`: add it to {NODE_DIR / 'package.json'} "
            "and run `npm install` there to update package-lock.json"
        )
    return path


def node() -> Path:
    """The `node` executable (checked when the tools were installed)."""
    npm_ci()
    found = shutil.which("node")
    if found is None:
        raise NodeToolError(f"node is not on PATH; {INSTALL_HINT}")
    return Path(found)
