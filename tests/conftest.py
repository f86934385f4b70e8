"""Setup shared by every test module: the stack limit and XLA's thread count."""

import os
import resource

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
