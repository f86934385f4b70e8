"""Named parameters of a model specification and the unconstrained vector an optimiser moves.

A :class:`ParameterSpace` picks parameters of a :class:`probssm.ssm.StateSpaceModel` by name
(the keys of its ``params`` dict and, for :class:`~probssm.ssm.AdditiveGaussianSSM`, ``"Q"``,
``"R"``, ``"m0"``, ``"P0"``), each with a constraint, and maps them to and from
:math:`\\theta \\in \\mathbb R^k`:

* ``"real"``: :math:`\\psi = \\theta`;
* ``"positive"``: :math:`\\psi = e^{\\theta}` (elementwise);
* ``"cov"``: a ``(d, d)`` covariance from its log-Cholesky factor
  (:func:`probssm.fit.cov_from_unconstrained`, ``d (d + 1) / 2`` entries of :math:`\\theta`).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from .transforms import cov_from_unconstrained, cov_to_unconstrained
from ..ssm import StateSpaceModel

__all__ = ["ParameterSpace", "CONSTRAINTS", "replace_parameters"]

CONSTRAINTS = ("real", "positive", "cov")
"""The constraint names of :class:`ParameterSpace`."""
_FIELDS = ("Q", "R", "m0", "P0")


class ParameterSpace:
    """The map between chosen parameters of ``model`` and :math:`\\theta`.

    Parameters
    ----------
    model : StateSpaceModel
        Gives the structure and the starting values.
    estimate : tuple of str or dict
        Names of the parameters to estimate, or ``{name: constraint}``; in the tuple form
        ``Q``, ``R``, ``P0`` are ``"cov"`` and everything else ``"real"``.
    """

    def __init__(self, model: StateSpaceModel, estimate):
        if not isinstance(model, StateSpaceModel):
            raise TypeError(f"model must be a probssm.ssm.StateSpaceModel, got {type(model).__name__}")
        if isinstance(estimate, str):
            estimate = (estimate,)
        if isinstance(estimate, Mapping):
            chosen = dict(estimate)
        else:
            chosen = {name: ("cov" if name in ("Q", "R", "P0") else "real") for name in estimate}
        available = self._available(model)
        for name, constraint in chosen.items():
            if name not in available:
                raise ValueError(f"estimate: unknown parameter {name!r}; the model has {sorted(available)}")
            if constraint not in CONSTRAINTS:
                raise ValueError(f"estimate[{name!r}]: constraint must be one of {CONSTRAINTS}, "
                                 f"got {constraint!r}")
            value = np.asarray(available[name], dtype=np.float64)
            if constraint == "cov" and (value.ndim != 2 or value.shape[0] != value.shape[1]):
                raise ValueError(f"estimate[{name!r}]: 'cov' needs a square matrix, got shape {value.shape}")
            if constraint == "positive" and not np.all(value > 0):
                raise ValueError(f"estimate[{name!r}]: 'positive' needs positive starting values, got {value}")
        self.constraints = chosen
        self.shapes = {name: np.shape(available[name]) for name in chosen}
        self.model = model
        self.theta0 = self.to_unconstrained({name: available[name] for name in chosen})

    @staticmethod
    def _available(model) -> dict:
        found = {}
        if model.additive:
            found.update({name: getattr(model, name) for name in _FIELDS})
        if isinstance(model.params, Mapping):
            found.update(model.params)
        return found

    @property
    def names(self) -> list[str]:
        """One label per natural scalar: ``"g"``, ``"Q[0,1]"``, ..."""
        labels = []
        for name, shape in self.shapes.items():
            if shape == ():
                labels.append(name)
            else:
                labels += [f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]
        return labels

    def _size(self, name) -> int:
        shape = self.shapes[name]
        if self.constraints[name] == "cov":
            return shape[0] * (shape[0] + 1) // 2
        return int(np.prod(shape, dtype=int))

    def values(self, theta) -> dict:
        """``{name: natural value}`` for ``theta`` ``(k,)`` (traceable)."""
        out, offset = {}, 0
        for name, constraint in self.constraints.items():
            size = self._size(name)
            block = theta[offset:offset + size]
            offset += size
            if constraint == "cov":
                out[name] = cov_from_unconstrained(block, self.shapes[name][0])
            elif constraint == "positive":
                out[name] = jnp.reshape(jnp.exp(block), self.shapes[name])
            else:
                out[name] = jnp.reshape(block, self.shapes[name])
        return out

    def to_unconstrained(self, values: dict) -> np.ndarray:
        """:math:`\\theta` of natural ``values`` (NumPy, float64)."""
        parts = []
        for name, constraint in self.constraints.items():
            value = np.asarray(values[name], dtype=np.float64)
            if constraint == "cov":
                with jax.enable_x64(True):
                    parts.append(np.asarray(cov_to_unconstrained(jnp.asarray(value))))
            elif constraint == "positive":
                parts.append(np.log(value).reshape(-1))
            else:
                parts.append(value.reshape(-1))
        return np.concatenate(parts) if parts else np.zeros(0)

    def natural(self, theta) -> np.ndarray:
        """The natural values of ``theta`` flattened in the order of :attr:`names`."""
        with jax.enable_x64(True):
            values = self.values(jnp.asarray(theta, dtype=jnp.float64))
            return np.concatenate([np.asarray(v).reshape(-1) for v in values.values()]) \
                if values else np.zeros(0)

    def build(self, theta, model=None) -> StateSpaceModel:
        """``model`` (default: the starting model) with the parameters of ``theta`` (traceable:
        the model's other leaves are kept)."""
        return replace_parameters(self.model if model is None else model, self.values(theta))


def replace_parameters(model: StateSpaceModel, values: dict) -> StateSpaceModel:
    """``model`` with some of its named parameters replaced (see :class:`ParameterSpace`)."""
    children, aux = model.tree_flatten()
    children = list(children)
    params = children[0]
    in_params = {k: v for k, v in values.items() if k not in _FIELDS or not model.additive}
    if in_params:
        children[0] = {**params, **in_params}
    if model.additive:
        for i, name in enumerate(_FIELDS, start=1):
            if name in values:
                children[i] = values[name]
    return type(model).tree_unflatten(aux, tuple(children))
