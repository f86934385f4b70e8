"""Setup shared by every test module: the stack limit, XLA's thread count, the release of
compiled programs after each module, and xdist groups."""

import gc
import os
import resource
import sys

import pytest

# XLA's CPU compiler recurses deeply on the long sequential smoother programs and overflowed the
# default 8 MB main-thread stack (a segfault in tests/kalman run on its own). On Linux the main
# thread's stack grows up to the *current* limit, so lifting the soft limit here is enough.
_soft, _hard = resource.getrlimit(resource.RLIMIT_STACK)
if _soft != resource.RLIM_INFINITY and (_hard == resource.RLIM_INFINITY or _soft < _hard):
    resource.setrlimit(resource.RLIMIT_STACK, (_hard, _hard))

# One XLA compute thread a test process (set before JAX is imported; the notebook kernels and
# benchmark scripts the tests start inherit it). `make test` runs one pytest worker per core, and
# the suite's time is XLA compilation and small programs: each worker's own thread pool of one
# thread per core only oversubscribed the cores (about 15 % slower). Results do not depend on it.
# Left alone where XLA_FLAGS already names either setting.
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_cpu_multi_thread_eigen" not in _flags and "intra_op_parallelism_threads" not in _flags:
    os.environ["XLA_FLAGS"] = (
        _flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
# The same for PyTorch (read when torch is imported): its OpenMP threads spin while they wait,
# and beside a second busy worker the README's deep forecasting example ran 13 times slower
# (201 s instead of 15 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs when a test module ends.

    A test worker lives for the whole suite. Every program XLA compiles for the CPU keeps its
    machine code in memory mappings of its own, and JAX's caches keep every program alive: after
    some 400 tests a worker held about 65 000 mappings, Linux's default limit
    (``vm.max_map_count`` = 65530), and the next compilation or load of a cached program died
    with a segmentation fault inside XLA. A module's programs are rarely needed by the next one.
    Modules that never imported JAX (the PyTorch tests) are left alone."""
    yield
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()
        gc.collect()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Tests marked ``xdist_group`` on one worker under ``--dist loadgroup``, also on pytest 9.

    pytest-xdist (3.8) asks for it by appending ``@<group>`` to ``item._nodeid`` in the worker;
    pytest 9 reads the node id from ``item._id`` instead, so the suffix never reached the
    scheduler and a group's tests were spread over both workers (each then built what the group
    shares, e.g. the float32 long-series problem). Here the suffix is set where it is read; a
    node id that already carries it (an xdist that sets it itself) is left alone."""
    if not getattr(config.option, "loadgroup", False):  # set in xdist workers under loadgroup
        return
    for item in items:
        names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                 for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)
