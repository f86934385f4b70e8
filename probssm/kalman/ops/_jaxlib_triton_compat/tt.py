"""The Triton dialect's Python module under the name MLIR's bindings look for (see the package
docstring): importing it registers the dialect's operations, as jaxlib's own module does."""

from jax._src.lib.triton import dialect  # noqa: F401
