"""Smoke test of benchmarks/particle_filter.py: it runs, and probssm's and particles'
log-likelihood estimates agree within Monte Carlo error. Timings are not asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "particle_filter.py"

pytest.importorskip("particles")


def test_particle_filter_quick_agrees(tmp_path):
    out = tmp_path / "pf.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "AGREEMENT CHECK PASSED" in proc.stdout, log
    result = json.loads(out.read_text())
    assert result["agreement"]["passed"] is True
    libraries = {r["library"] for r in result["results"]}
    assert libraries == {"probssm (jit)", "probssm (API call)", "particles"}
    for r in result["results"]:
        assert r["N"] == 1000 and r["T"] == 200 and r["seconds"] > 0 and r["particle_steps_per_second"] > 0
