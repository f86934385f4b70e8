"""The public names of the deep forecasters' modules have docstrings and are in the docs (the
check of ``tests/test_docs.py``, run here in the deep tests' process)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("pyro")

MODULES = ("probssm.deep.estimator", "probssm.deep.heads", "probssm.deep.training",
           "probssm.deep.statespace", "probssm.deep.windows")


def test_forecaster_modules_are_documented():
    path = Path(__file__).resolve().parents[1] / "test_docs.py"
    spec = importlib.util.spec_from_file_location("probssm_docs_check_forecasters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_modules(MODULES)
