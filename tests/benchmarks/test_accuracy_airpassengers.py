"""Smoke test of benchmarks/accuracy_airpassengers.py: it runs, every model gets finite metrics,
and probssm's forecasts agree with statsmodels'.

Timings are not asserted (they depend on the machine and its load); neither is the ranking
against statsforecast (it depends on statsforecast's version).
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "accuracy_airpassengers.py"

# Checked without importing them: the script runs in a process of its own, and importing
# statsforecast here would load numba into every test worker at collection.
for _peer in ("statsforecast", "statsmodels"):
    if importlib.util.find_spec(_peer) is None:
        pytest.skip(f"{_peer} is not installed", allow_module_level=True)

SPECS = ("SARIMAX(0,1,1)(0,1,1)12", "UC LLT + Seasonal(12)", "UC LLT + TrigSeasonal(12, 6)")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("accuracy") / "accuracy.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "ALL CHECKS PASSED" in proc.stdout, log
    return json.loads(out.read_text())


def test_every_model_has_finite_metrics(result):
    assert result["passed"] is True, result["failures"]
    rows = {r["model"]: r for r in result["results"]}
    expected = {f"probssm {s}" for s in SPECS} | {f"statsmodels {s}" for s in SPECS} | {
        "statsforecast AutoARIMA", "statsforecast AutoETS", "statsforecast AutoARIMA [log]",
        "statsforecast AutoETS [log]", "statsforecast SeasonalNaive"}
    assert expected <= set(rows), sorted(rows)
    y_test = result["y_test"]
    assert len(y_test) == 12
    for name, r in rows.items():
        for key in ("mase", "smape", "coverage90", "mean_interval_width"):
            assert r[key] is not None and math.isfinite(r[key]), (name, key, r[key])
        assert r["mase"] > 0 and 0 < r["smape"] < 200, name
        # 12 held-out points: coverage is k/12.
        assert abs(r["coverage90"] * 12 - round(r["coverage90"] * 12)) < 1e-12, name
        for key in ("point", "lower", "upper"):
            assert len(r["forecast"][key]) == 12, (name, key)
        assert all(lo <= p <= hi for lo, p, hi in zip(r["forecast"]["lower"], r["forecast"]["point"],
                                                      r["forecast"]["upper"])), name
    # MASE recomputed here from its definition: the in-sample seasonal-naive scale of period 12.
    y_train = result["y_train"]
    assert len(y_train) == 132
    scale = sum(abs(y_train[t] - y_train[t - 12]) for t in range(12, 132)) / 120
    for name, r in rows.items():
        mae = sum(abs(a - b) for a, b in zip(y_test, r["forecast"]["point"])) / 12
        assert r["mase"] == pytest.approx(mae / scale, rel=1e-12), name
    # The seasonal-naive forecast repeats the last training year.
    assert rows["statsforecast SeasonalNaive"]["forecast"]["point"] == pytest.approx(y_train[-12:], rel=1e-12)


def test_probssm_agrees_with_statsmodels(result):
    checks = result["cross_checks"]
    assert len(checks) == 2 + len(SPECS)
    assert all(c["passed"] for c in checks), checks
    same = checks[0]
    assert same["max_rel_diff_mean"] <= 1e-6 and same["max_rel_diff_std"] <= 1e-6, same
    assert checks[1]["max_rel_diff_loglik"] <= 1e-6, checks[1]
    for c in checks[2:]:
        assert max(c["max_rel_diff_point"], c["max_rel_diff_lower"], c["max_rel_diff_upper"]) <= 1e-3, c
    # The metrics follow: the airline model scores the same in both libraries.
    rows = {r["model"]: r for r in result["results"]}
    ours, theirs = rows[f"probssm {SPECS[0]}"], rows[f"statsmodels {SPECS[0]}"]
    assert ours["mase"] == pytest.approx(theirs["mase"], rel=1e-3)
    assert ours["coverage90"] == theirs["coverage90"]


def test_aim_is_recorded(result):
    aim = result["aim"]
    assert isinstance(aim["met"], bool)
    assert aim["reference_mase"] is not None and math.isfinite(aim["reference_mase"])
    assert aim["met"] == bool(aim["models_meeting_aim"])
    assert all(name.startswith("probssm ") for name in aim["models_meeting_aim"])
