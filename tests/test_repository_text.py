"""The repository speaks only of itself: no tracked text file points at files outside it or at
numbered work items. Skipped where there is no git checkout (an installed copy)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Committed benchmark output is a record of what a run printed, not text to keep in step.
SKIPPED_DIRS = ("benchmarks/results/",)
# Written so that this file does not match itself.
FORBIDDEN = [
    ("a path outside the repository", re.compile(r"\.\./shared")),
    ("a design file outside the repository", re.compile(r"DESIGN\.md")),
    ("a numbered work item", re.compile(r"\bissues? \d+", re.IGNORECASE)),
]


def tracked_files() -> list[str]:
    """Paths of the tracked files, relative to the repository root; skips the test when git
    or the checkout is missing."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if not os.path.exists(os.path.join(ROOT, ".git")):
        pytest.skip("not a git checkout (no .git)")
    out = subprocess.run(
        ["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, timeout=60, check=False
    )
    if out.returncode != 0:
        pytest.skip(f"git ls-files failed: {out.stderr.decode(errors='replace').strip()}")
    return [p for p in out.stdout.decode().split("\0") if p]


def text_of(path: str) -> str | None:
    """The file's text, or None for a binary file or one missing from the working tree."""
    full = os.path.join(ROOT, path)
    if not os.path.isfile(full):
        return None
    with open(full, "rb") as f:
        data = f.read()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_tracked_text_refers_only_to_the_repository():
    hits = []
    for path in tracked_files():
        if path.startswith(SKIPPED_DIRS):
            continue
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for what, pattern in FORBIDDEN:
                if pattern.search(line):
                    hits.append(f"{path}:{number}: {what}: {line.strip()}")
    assert not hits, "text that refers outside the repository:\n" + "\n".join(hits)
