"""Smoke test of benchmarks/probes/kernel_geometry_sweep.py on the CPU (Pallas interpreter): it runs a
configuration with and without the chunk scan's top level, and their outputs agree.

Timings are not asserted; the GPU run is where they mean something.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "probes" / "kernel_geometry_sweep.py"


def test_sweep_top_level_agrees(tmp_path):
    out = tmp_path / "sweep.jsonl"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--T", "300", "--B", "3", "--n", "2", "--modes", "filter",
         "--configs", "16:2:0", "16:2:8", "--runs", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["config"], r["top"], r["mode"]) for r in records] == [
        ("16:2:0", 0, "filter"), ("16:2:8", 8, "filter")]
    # 19 chunks a series in groups of 2 (19 -> 10 -> 5 -> 3 -> 2 -> 1): the doubling scans the
    # level of 5; float32 outputs agree to rounding.
    assert records[0]["max_rel_diff"] == 0.0
    assert records[1]["max_rel_diff"] < 1e-5, records[1]
    assert abs(records[1]["ll"] - records[0]["ll"]) <= 1e-5 * abs(records[0]["ll"])
