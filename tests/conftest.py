"""Test-session setup shared by every test module."""

import resource

# XLA's CPU compiler recurses deeply on the long sequential smoother programs and overflowed the
# default 8 MB main-thread stack (a segfault in tests/kalman run on its own). On Linux the main
# thread's stack grows up to the *current* limit, so lifting the soft limit here is enough.
_soft, _hard = resource.getrlimit(resource.RLIMIT_STACK)
if _soft != resource.RLIM_INFINITY and (_hard == resource.RLIM_INFINITY or _soft < _hard):
    resource.setrlimit(resource.RLIMIT_STACK, (_hard, _hard))
