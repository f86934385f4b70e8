"""The GP tests compute in float64 (scoped, never by flipping JAX's global flag)."""

import jax
import pytest


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield
