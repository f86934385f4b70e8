"""probssm._compile.jit: CPU compiler options where XLA knows them, plain jax.jit otherwise."""

import jax
import jax.numpy as jnp
import numpy as np

from probssm import _compile


def test_cpu_options_apply_and_give_the_same_results():
    assert dict(_compile._compiler_options("cpu")) == _compile._CPU_OPTIONS
    assert _compile._compiler_options("gpu") == ()

    def f(x):
        return jnp.cumsum(jnp.sin(x) ** 2) @ x

    x = jnp.linspace(0.0, 3.0, 50)
    fast = _compile.jit(f)
    np.testing.assert_allclose(fast(x), jax.jit(f)(x), rtol=1e-6)


def test_unknown_option_falls_back_to_defaults(monkeypatch):
    monkeypatch.setattr(_compile, "_CPU_OPTIONS", {"xla_no_such_option_for_probssm": True})
    _compile._compiler_options.cache_clear()
    try:
        assert _compile._compiler_options("cpu") == ()
        assert float(_compile.jit(lambda x: 2 * x)(3.0)) == 6.0
    finally:
        monkeypatch.undo()
        _compile._compiler_options.cache_clear()
