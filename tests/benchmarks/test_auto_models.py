"""Smoke test of benchmarks/auto_models.py --quick: it runs, every model gets finite metrics that
agree with their definitions, and each series' selection in the panel fit equals its fit alone.

Timings and the ranking against statsforecast are not asserted (they depend on the machine, its
load and statsforecast's version).
"""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "auto_models.py"

# Checked without importing it: the script runs in a process of its own, and importing
# statsforecast here would load numba into every test worker at collection.
if importlib.util.find_spec("statsforecast") is None:
    pytest.skip("statsforecast is not installed", allow_module_level=True)

MODELS = {"probssm AutoSARIMAX", "probssm AutoUC", "statsforecast AutoARIMA", "statsforecast AutoETS"}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("auto_models") / "auto_models.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert "ALL CHECKS PASSED" in proc.stdout, log
    return json.loads(out.read_text())


def test_every_model_has_finite_metrics(result):
    assert result["quick"] is True and result["series"] == 4 and result["horizon"] == 24
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == MODELS
    held_out = result["series"] * result["horizon"]
    for name, r in rows.items():
        assert r["MASE"] > 0 and r["CRPS (scaled)"] > 0, name
        for key in ("coverage 80%", "coverage 95%"):
            assert 0 <= r[key] <= 1, (name, key)
            # a fraction of the 96 held-out values
            assert abs(r[key] * held_out - round(r[key] * held_out)) < 1e-9, (name, key)
        assert r["coverage 95%"] >= r["coverage 80%"], name
        assert math.isfinite(r["fit s"]) and r["fit s"] > 0, name


def test_panel_selection_equals_series_alone(result):
    checks = result["cross_checks"]
    assert len(checks) == 2
    assert all(c["passed"] and c["panel"] == c["alone"] for c in checks), checks


def test_aims_are_recorded(result):
    assert set(result["aims"]) == {"probssm AutoSARIMAX", "probssm AutoUC"}
    for aim in result["aims"].values():
        assert set(aim) == {"MASE <= both", "CRPS <= both", "time <= AutoARIMA"}
        assert all(isinstance(v, bool) for v in aim.values())
