"""Smoke test of benchmarks/first_fit.py: it runs in its quick setting, its JSON has the
structure the benchmarks page reads, and probssm's maximised log-likelihoods equal
statsmodels' (exact diffuse) to 1e-6 relative.

Timings are not asserted (they depend on the machine, its load and the compile cache).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "first_fit.py"

pytest.importorskip("statsmodels")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("first_fit") / "first_fit.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--output", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "AGREEMENT CHECK PASSED" in proc.stdout, log
    return json.loads(out.read_text())


def test_structure(result):
    assert result["benchmark"] == "first_fit"
    for key in ("cpu_model", "cpu_count", "cpus_usable"):
        assert key in result["machine"]
    for dist in ("python", "probssm", "jax", "numpy", "statsmodels"):
        assert result["versions"][dist], dist
    assert set(result["cold_start"]) == {"probssm", "statsmodels"}
    for cold in result["cold_start"].values():
        assert cold["import_s"] >= 0 and cold["first_fit_s"] > 0 and math.isfinite(cold["loglik"])
    assert [m["model"] for m in result["models"]] == ["local level", "airline"]
    for m in result["models"]:
        assert m["fits"] and all(f["length"] != m["warmup_length"] for f in m["fits"])
        assert m["warmup"]["probssm_s"] > 0 and m["warm"]["probssm_s"] > 0
        for f in m["fits"]:
            assert f["probssm_s"] > 0 and f["statsmodels_s"] > 0
            assert f["ratio"] == pytest.approx(f["statsmodels_s"] / f["probssm_s"])
            assert f["target_s"] == 0.2 and f["met"] == (f["probssm_s"] < 0.2)
    assert result["all_met"] == all(f["met"] for m in result["models"] for f in m["fits"])


def test_loglik_agrees_with_statsmodels(result):
    assert result["agreement"]["passed"] is True, result["agreement"]
    cold = result["cold_start"]
    for m in result["models"]:
        for f in m["fits"]:
            assert f["probssm_loglik"] == pytest.approx(f["loglik_exact_diffuse"], rel=1e-6), (m["model"], f)
            # statsmodels' own filter at probssm's estimates gives probssm's log-likelihood.
            assert f["loglik_at_probssm_params"] == pytest.approx(f["probssm_loglik"], rel=1e-6), (m["model"], f)
    assert math.isfinite(cold["probssm"]["loglik"]) and math.isfinite(cold["statsmodels"]["loglik"])
