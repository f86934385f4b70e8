"""Smoke test of benchmarks/gp.py: it runs at its smallest size, every library's log marginal
likelihood and gradient agree with probssm's and the dense computation's, and its JSON says so.

Timings are not asserted (they depend on the machine and its load). probssm's parallel method
is left out: compiling its gradient takes about a minute on a CPU.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gp.py"

pytest.importorskip("tinygp")
pytest.importorskip("sklearn")

PEERS = ("dense JAX Cholesky", "tinygp quasisep", "scikit-learn")


def test_gp_quick_agrees(tmp_path):
    out = tmp_path / "gp_cpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--target-seconds", "0.02", "--min-repeats", "3",
         "--json", str(out), "--libraries", *PEERS],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "AGREEMENT CHECK PASSED" in proc.stdout, log[-5000:]

    result = json.loads(out.read_text())
    assert result["agreement"]["passed"] is True
    assert result["agreement"]["failures"] == []
    rows = result["results"]
    assert {(r["model"], r["library"]) for r in rows} == {
        (model, library) for model in ("full", "matern52")
        for library in ("probssm sequential", "dense JAX Cholesky", "tinygp quasisep")
    } | {("matern52", "scikit-learn")}
    for r in rows:
        assert r["agrees"] is True, r
        assert r["rel_diff_vs_probssm"] <= 1e-8 and r["rel_diff_vs_dense"] <= 1e-8, r
        assert r["grad_diff_vs_probssm"] <= 1e-6 and r["grad_diff_vs_dense"] <= 1e-6, r
        assert len(r["gradient"]) == len(result["models"][r["model"]]["names"]), r
        assert r["seconds"] > 0 and r["ratio"] > 0, r
    assert result["machine"]["cpu_count"] >= 1 and result["versions"]["tinygp"]
