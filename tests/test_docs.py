"""The documentation cannot silently fall behind the public API.

Every name in the ``__all__`` of each public module must have a non-empty docstring of its own and
be mentioned, fully qualified (``probssm.kalman.filter``), somewhere under ``docs/``. The API pages
list their module's names in a summary table of cross-references, so a name added to ``__all__``
without a line there fails here. Fast: imports the modules and reads text; it does not run mkdocs.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

PUBLIC_MODULES = (
    "probssm.kalman",
    "probssm.kalman.em",
    "probssm.kalman.estimator",
    "probssm.kalman.forecaster",
    "probssm.kalman.posterior",
    "probssm.kalman.reports",
    "probssm.kalman.compiled",
    "probssm.kalman.iterated",
    "probssm.kalman.steps",
    "probssm.kalman.insample",
    "probssm.kalman.fixed",
    "probssm.kalman.simulation",
    "probssm.ssm",
    "probssm.nonlinear",
    "probssm.nonlinear.rules",
    "probssm.nonlinear.estimator",
    "probssm.smc",
    "probssm.smc.resampling",
    "probssm.smc.estimator",
    "probssm.gp",
    "probssm.gp.kernels",
    "probssm.gp.inference",
    "probssm.gp.likelihoods",
    "probssm.gp.bayes",
    "probssm.gp.panel",
    "probssm.gp.fitting",
    "probssm.gp.time_axis",
    "probssm.gp.laplace",
    "probssm.structural",
    "probssm.structural.auto_differencing",
    "probssm.structural.auto_candidates",
    "probssm.structural.arima",
    "probssm.structural.arima_lags",
    "probssm.structural.arima_start",
    "probssm.structural.arima_regression",
    "probssm.structural.concentrated",
    "probssm.structural.diffuse_options",
    "probssm.structural.unobserved",
    "probssm.diagnostics",
    "probssm.fit",
    "probssm.fit.bayes",
    "probssm.fit.batched",
    "probssm.fit.parameters",
    "probssm.metrics",
    "probssm.base",
    "probssm.datasets",
    "probssm.frontend",
    "probssm.frontend_data",
    "probssm.frontend_fit",
    "probssm.backtesting",
    "probssm.adapters.sktime",
)


def _public_names(module) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    # No __all__ (probssm.kalman.em): the public functions and classes defined in the module.
    return [
        name for name, obj in vars(module).items()
        if not name.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj) or callable(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


def _attribute_docstring(module, name: str, seen=()) -> str | None:
    """The string literal right after ``name = ...`` in the module that defines ``name``,
    following ``from .x import name`` re-exports."""
    path = getattr(module, "__file__", None)
    if path is None or module.__name__ in seen:
        return None
    tree = ast.parse(Path(path).read_text())
    body = tree.body
    for i, node in enumerate(body):
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        if name in targets:
            nxt = body[i + 1] if i + 1 < len(body) else None
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) \
                    and isinstance(nxt.value.value, str):
                return nxt.value.value
            return None
    for node in body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name and a.asname is None for a in node.names):
            package = module.__name__ if path.endswith("__init__.py") else module.__name__.rpartition(".")[0]
            source = importlib.import_module("." * node.level + (node.module or ""), package)
            return _attribute_docstring(source, name, (*seen, module.__name__))
    return None


def _own_docstring(module, name: str) -> str | None:
    obj = getattr(module, name)
    if inspect.ismodule(obj):
        return obj.__doc__
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        # dataclasses and NamedTuples without a docstring get a generated "Name(field, ...)" one.
        generated = doc is not None and doc.startswith(f"{obj.__name__}(")
        if generated and (dataclasses.is_dataclass(obj) or hasattr(obj, "_fields")):
            return None
        return doc
    if callable(obj):
        return getattr(obj, "__doc__", None)
    # A constant: its docstring is the string literal after the assignment.
    return _attribute_docstring(module, name)


def check_modules(module_names) -> None:
    """Assert that every public name of ``module_names`` has a docstring and is in ``docs/``
    (``tests/deep/test_documented.py`` runs it on the PyTorch modules, in the deep tests'
    process)."""
    docs_text = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*")) if p.suffix in (".md", ".yml")
    )
    assert docs_text, f"no documentation pages found under {DOCS}"
    missing_docstring, not_in_docs = [], []
    for module_name in module_names:
        module = importlib.import_module(module_name)
        names = _public_names(module)
        assert names, f"{module_name} exports no public names"
        for name in names:
            qualified = f"{module_name}.{name}"
            doc = _own_docstring(module, name)
            if not (doc and doc.strip()):
                missing_docstring.append(qualified)
            if qualified not in docs_text:
                not_in_docs.append(qualified)
    problems = []
    if missing_docstring:
        problems.append("public names without a docstring: " + ", ".join(missing_docstring))
    if not_in_docs:
        problems.append(
            "public names not mentioned (fully qualified) under docs/ -- add them to the summary "
            "table of their API page: " + ", ".join(not_in_docs)
        )
    assert not problems, "\n".join(problems)


def test_every_public_name_is_documented_and_in_the_docs():
    check_modules(PUBLIC_MODULES)
