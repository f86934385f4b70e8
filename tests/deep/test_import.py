"""probssm.deep loads torch only when its submodules are used, and never loads JAX."""

import subprocess
import sys

import pytest

pytest.importorskip("torch")

SCRIPT = """
import sys
import probssm, probssm.deep
assert "torch" not in sys.modules, "import probssm.deep imported torch"
assert sorted(dir(probssm.deep)) == ["DeepStateForecaster", "MambaForecaster", "heads", "layers",
                                     "ops", "training"]
assert "torch" not in sys.modules, "dir(probssm.deep) imported torch"
from probssm.deep.layers import Mamba
from probssm.deep.ops import selective_scan
import probssm.deep.layers, probssm.deep.ops
assert probssm.deep.ops.selective_scan is selective_scan
jax = [m for m in sys.modules if m == "jax" or m.startswith("jax.")]
assert not jax, f"the torch modules imported {jax[:3]}"
print("ok")
"""


def test_lazy_and_jax_free():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def test_missing_torch_is_a_clear_import_error():
    script = ("import sys; sys.modules['torch'] = None\n"
              "import probssm.deep\n"
              "try:\n    probssm.deep.ops\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert "probssm.deep.ops needs PyTorch: install the deep extra" in out.stdout, out.stderr
