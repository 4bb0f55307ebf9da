"""Type aliases used across jaxood (documentation only, not checked at run time)."""

from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # A pytree of arrays.
