"""Smoke test of benchmarks/many_series.py at a small size: it runs, probssm's panel fit
converges, and its optimum is never worse than statsmodels' (timings are not asserted)."""

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "many_series.py"


def _load():
    spec = importlib.util.spec_from_file_location("many_series", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_many_series_small_run_matches_statsmodels(tmp_path):
    out = tmp_path / "many_series.json"
    code = _load().main(["--n-series", "40", "--T", "72", "--sm-series", "5", "--warm-runs", "1",
                         "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["n_series"] == 40 and result["statsmodels_series_timed"] == 5
    assert result["probssm_converged"] == 1.0
    ll = result["loglik_minus_statsmodels"]
    assert ll["share_ours_lower_by_1e-4_rel"] == 0.0
    assert ll["min"] > -1e-4 * 100  # log-likelihoods here are O(100)
    assert result["probssm_seconds_warm"] > 0 and len(result["probssm_seconds_warm_runs"]) == 1
