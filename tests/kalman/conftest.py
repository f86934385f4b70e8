"""Data shared by the kalman tests that compare with statsmodels."""

import numpy as np
import pytest

from probssm.datasets import load_airpassengers, load_nile


@pytest.fixture(scope="module")
def nile():
    return load_nile()


@pytest.fixture(scope="module")
def log_air():
    return np.log(load_airpassengers())
