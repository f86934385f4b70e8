"""Every benchmark script imports: the GPU probes run only on a device, so a name they take from
probssm that has since moved would otherwise go unnoticed until a device session (as
``score_compile_probe.py``'s ``score._mm`` did). Imports only; ``main`` is not run."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))


def test_benchmark_scripts_import():
    assert "score_compile_probe" in SCRIPTS and "kernel_geometry_sweep" in SCRIPTS
    code = "import importlib\n" + "".join(f"importlib.import_module({s!r})\n" for s in SCRIPTS)
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
