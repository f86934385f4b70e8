"""Smoke test of benchmarks/kalman_cpu.py: it runs, and every library agrees with probssm.

Timings are not asserted (they depend on the machine and its load).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "kalman_cpu.py"

pytest.importorskip("pykalman")
pytest.importorskip("filterpy")


def test_kalman_cpu_quick_agrees(tmp_path):
    out = tmp_path / "kalman_cpu.json"
    proc = subprocess.run(
        # Every library but probssm's parallel method (its CPU compile alone takes ~7 s; the
        # associative scan is checked against the sequential filter in tests/kalman).
        [sys.executable, str(SCRIPT), "--quick", "--target-seconds", "0.05", "--json", str(out),
         "--libraries", "probssm (API call)", "statsmodels (conventional)", "statsmodels (univariate)",
         "statsmodels (univariate, no steady state)", "pykalman", "filterpy"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "AGREEMENT CHECK PASSED" in proc.stdout, log

    result = json.loads(out.read_text())
    assert result["agreement"]["passed"] is True
    assert result["agreement"]["max_rel_diff"] <= 1e-6
    rows = result["results"]
    assert {r["T"] for r in rows} == {1000}
    libraries = {r["library"] for r in rows}
    for name in ("probssm (jit)", "statsmodels (conventional)", "statsmodels (univariate)",
                 "pykalman", "filterpy"):
        assert name in libraries, libraries
    for r in rows:
        assert r["rel_diff"] is not None and r["rel_diff"] <= 1e-6, r
