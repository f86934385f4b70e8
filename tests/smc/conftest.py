"""The particle-filter tests compute in float64 (scoped, never by flipping JAX's global flag),
module-scoped so that module-scoped fixtures (filters run once and checked by several tests)
are built in float64 too."""

import jax
import pytest


@pytest.fixture(autouse=True, scope="module")
def float64():
    with jax.enable_x64(True):
        yield
