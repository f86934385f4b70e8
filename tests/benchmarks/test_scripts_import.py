"""Every benchmark script and probe imports: the GPU probes run only on a device, so a name they
take from probssm that has since moved would otherwise go unnoticed until a device run.
Imports only; ``main`` is not run."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PROBES = BENCHMARKS / "probes"
SCRIPTS = sorted(p.stem for p in BENCHMARKS.glob("*.py"))
PROBE_SCRIPTS = sorted(p.stem for p in PROBES.glob("*.py"))
BENCH_ONLY_PEERS = {"statsforecast"}


def test_benchmark_scripts_import():
    assert "first_fit" in SCRIPTS and "parallel_kalman" in SCRIPTS
    assert "kernel_compile_probe" in PROBE_SCRIPTS and "kernel_geometry_sweep" in PROBE_SCRIPTS
    # A script may import a peer that only the bench extra installs (statsforecast pins pandas < 3
    # and stays out of the test environment): where that peer is missing, the script is skipped.
    code = (f"import importlib, sys\nsys.path[:0] = [{str(BENCHMARKS)!r}, {str(PROBES)!r}]\n"
            f"for name in {SCRIPTS + PROBE_SCRIPTS!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ModuleNotFoundError as err:\n"
            f"        if (err.name or '').partition('.')[0] not in {sorted(BENCH_ONLY_PEERS)!r}:\n"
            "            raise\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=BENCHMARKS.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
