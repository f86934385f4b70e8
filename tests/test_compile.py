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


def test_persistent_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PROBSSM_NO_COMPILATION_CACHE", raising=False)
    monkeypatch.delenv("PROBSSM_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _compile.persistent_cache_dir() == tmp_path / "xdg" / "probssm" / "jax"
    monkeypatch.setenv("PROBSSM_CACHE_DIR", str(tmp_path / "mine"))
    assert _compile.persistent_cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("PROBSSM_NO_COMPILATION_CACHE", "1")
    assert _compile.persistent_cache_dir() is None
    monkeypatch.setenv("PROBSSM_NO_COMPILATION_CACHE", "0")
    assert _compile.persistent_cache_dir() == tmp_path / "mine"


def test_a_fit_fills_the_persistent_cache_and_a_new_process_reads_it(tmp_path):
    """Two fresh processes fit the same model: the first writes compiled programs to the
    folder, the second finds them there (JAX counts its cache hits)."""
    import json
    import os
    import subprocess
    import sys

    program = (
        "import json, jax, numpy as np\n"
        "from jax._src import monitoring\n"
        "hits = []\n"
        "monitoring.register_event_listener(lambda e, **k: hits.append(e) if e.endswith('cache_hits') else None)\n"
        "from probssm.structural import LocalLevel\n"
        "LocalLevel().fit(np.sin(np.arange(40.0)) + np.arange(40.0) / 10)\n"
        "print(json.dumps({'dir': jax.config.jax_compilation_cache_dir, 'hits': len(hits),\n"
        "                  'max_size': jax.config.jax_compilation_cache_max_size}))\n"
    )
    env = dict(os.environ, PROBSSM_CACHE_DIR=str(tmp_path), PROBSSM_NO_COMPILATION_CACHE="")
    runs = [json.loads(subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                                      text=True, check=True).stdout.splitlines()[-1]) for _ in range(2)]
    assert runs[0]["dir"] == str(tmp_path) and runs[0]["max_size"] > 0
    assert any(p.name.endswith("-cache") for p in tmp_path.iterdir())
    assert runs[0]["hits"] == 0 and runs[1]["hits"] > 0
