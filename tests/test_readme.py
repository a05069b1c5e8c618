"""Every ```python block of README.md runs as pasted: each in a fresh interpreter, in an empty
directory, on the CPU. A block that is not meant to run takes another fence language."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
# An opening fence of three or more backticks (or tildes), the info string, the body, and the
# same fence closing it, per CommonMark; indented fences (up to 3 spaces) included.
FENCE = re.compile(
    r"^ {0,3}(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n]*)\n(?P<body>.*?)^ {0,3}(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the opening fence, code) of each block whose language is python."""
    blocks = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip().split()
        if info and info[0].lower() in {"python", "py", "python3"}:
            line = text.count("\n", 0, m.start()) + 1
            blocks.append((line, textwrap.dedent(m.group("body"))))
    return blocks


def _blocks() -> list:
    with open(README, encoding="utf-8") as f:
        blocks = python_blocks(f.read())
    params = []
    for number, (line, code) in enumerate(blocks, start=1):
        first = next((s.strip() for s in code.splitlines() if s.strip()), "")
        params.append(pytest.param(line, code, id=f"block{number}-line{line}: {first[:50]}"))
    return params


def test_readme_has_python_blocks():
    assert len(_blocks()) >= 3


def test_fence_parser_finds_only_python_blocks():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n````py\ny = 2\n````\n```text\nz\n```\n"
    assert python_blocks(text) == [(2, "x = 1\n"), (8, "y = 2\n")]


@pytest.mark.parametrize(("line", "code"), _blocks())
def test_readme_python_block_runs(line, code, tmp_path):
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(
            [os.path.join(ROOT, "python"), os.environ.get("PYTHONPATH", "")]
        ),
        CUDA_VISIBLE_DEVICES="",  # the blocks are checked on the CPU, as a reader without a GPU
    )
    for name in ("FUSED_REPARAM_BACKEND", "TRITON_INTERPRET"):
        env.pop(name, None)  # the defaults a reader has
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, (
        f"README.md block at line {line} exited with {out.returncode}:\n"
        f"--- code ---\n{code}--- stderr ---\n{out.stderr[-4000:]}"
    )
