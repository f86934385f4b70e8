"""The PyTorch modules' public names are documented (the check of ``tests/test_docs.py``, run
here because the deep tests have a process of their own: see the Makefile's ``test``)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyro")

DEEP_MODULES = ("probssm.deep", "probssm.deep.ops", "probssm.deep.layers",
                "probssm.deep.estimator", "probssm.deep.heads", "probssm.deep.training",
                "probssm.deep.statespace", "probssm.deep.windows")


def test_deep_public_names_are_documented():
    path = Path(__file__).resolve().parents[1] / "test_docs.py"
    spec = importlib.util.spec_from_file_location("probssm_docs_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_modules(DEEP_MODULES)
