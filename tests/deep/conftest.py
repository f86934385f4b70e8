"""Setup of the deep tests, which need PyTorch (the ``deep`` extra).

Without torch each test module skips itself (``pytest.importorskip("torch")`` at its top). The
skip is not raised here: pytest aborts the whole run, instead of skipping, when a conftest that
it loads for a path named on the command line (``pytest tests/deep``) raises it.
"""

import os

try:
    import torch
except ImportError:
    torch = None

if torch is not None:
    # One intra-op thread: the CI machine has two cores and `make test` runs one worker per core.
    torch.set_num_threads(1)
    if not torch.cuda.is_available():
        # Without a GPU the Triton kernels run under Triton's interpreter on CPU tensors. Triton
        # reads this once, when it is first imported, so it is set before any test module loads.
        os.environ.setdefault("TRITON_INTERPRET", "1")
