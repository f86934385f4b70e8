"""The nonlinear tests compute in float64 (scoped, never by flipping JAX's global flag).

Module-scoped, so that the module-scoped fixtures (problems computed once and compared by many
tests) are built in float64 too: pytest sets up a scope's autouse fixtures before its others."""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def float64():
    with jax.enable_x64(True):
        yield
