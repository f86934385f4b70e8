"""Every ```python block of README.md runs as pasted, each in a fresh namespace, in order."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```python fenced blocks of a Markdown text, in order."""
    return PYTHON_BLOCK.findall(text)


BLOCKS = python_blocks(README.read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda k: f"block{k + 1}")
def test_readme_block_runs_as_pasted(number, tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)  # whatever a block writes lands in a scratch folder
    code = compile(BLOCKS[number], f"README.md, python block {number + 1}", "exec")
    try:
        exec(code, {"__name__": f"readme_block_{number + 1}"})
    finally:
        plt.close("all")
