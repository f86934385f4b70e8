"""Smoke test of benchmarks/nonlinear.py: both parts run at a tiny size on the CPU, every peer
that is installed agrees with probssm, and the JSON says so.

Timings are not asserted. The GPU part runs probssm's sequential method and dynamax only here:
compiling the parallel scans (probssm's parallel method, cuthbert's iterated loop) takes 20-30 s
each on the 2-core machine. ``benchmarks/nonlinear.py --part gpu --quick`` runs them all and
checks cuthbert against probssm (float64, 1e-6).
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "nonlinear.py"


def _installed(*names):
    return [n for n in names if importlib.util.find_spec(n) is not None]


def _run(tmp_path, part, *extra):
    out = tmp_path / f"nonlinear_{part}.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--part", part, "--quick", "--json", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    assert "AGREEMENT CHECK PASSED" in proc.stdout, log[-5000:]
    return json.loads(out.read_text())


def test_cpu_ukf_filter_agrees(tmp_path):
    peers = _installed("filterpy", "dynamax")
    result = _run(tmp_path, "cpu", "--libraries", *(peers or ["none"]), "--min-repeats", "2")
    assert result["failures"] == []
    rows = {r["library"]: r for r in result["rows"]}
    expected = {"probssm (jit)", "probssm, public call"}
    if "filterpy" in peers:
        expected |= {"filterpy", "filterpy, no log-likelihood"}
    if "dynamax" in peers:
        expected.add("dynamax (jit)")
    assert set(rows) == expected
    for name, r in rows.items():
        assert r["seconds"] > 0 and r["ratio"] > 0, r
        if name != "probssm (jit)":
            assert r["agrees"] is True and r["max_abs_diff_mean_vs_probssm"] < 1e-6, r
    assert rows["probssm (jit)"]["compile_seconds"] > 0
    assert result["device"]["cpu_count"] >= 1 and result["uptime_start"]


def test_gpu_part_iterated_smoothers_on_cpu(tmp_path):
    peers = _installed("dynamax")
    result = _run(tmp_path, "gpu", "--T", "64", "--check-T", "64", "--rules", "extended",
                  "--methods", "sequential", "--no-breakdown", "--compile-threads", "2",
                  "--libraries", *(peers or ["none"]))
    assert result["failures"] == []
    checks = {c["check"]: c for c in result["checks"]}
    if "dynamax" in peers:
        assert checks["dynamax sequential (1 pass) vs probssm sequential (1 pass)"]["passed"]
    rows = {r["library"]: r for r in result["rows"]}
    assert "probssm sequential" in rows
    for r in rows.values():
        assert r["finite"] and r["seconds"] > 0 and r["rmse_to_truth"] < 1.0, r
    assert rows["probssm sequential"]["max_abs_diff_vs_f64"] < 1e-3
    seeds = result["seeds"][0]
    assert all(seeds["finite"]) and len(seeds["seeds"]) == 3
