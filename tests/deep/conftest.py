"""Setup of the deep tests, which need PyTorch (the ``deep`` extra).

Without torch each test module skips itself (``pytest.importorskip("torch")`` at its top). The
skip is not raised here: pytest aborts the whole run, instead of skipping, when a conftest that
it loads for a path named on the command line (``pytest tests/deep``) raises it.
"""

try:
    import torch
except ImportError:
    torch = None

if torch is not None:
    # One intra-op thread: the CI machine has two cores and `make test` runs one worker per core.
    torch.set_num_threads(1)
