"""The numba decorators of the decision kernels, and the index's helpers compiled for them.

Every kernel here is compiled once into numba's on-disk cache (``__pycache__`` beside
the module, or ``NUMBA_CACHE_DIR``) and loaded from it by later processes. Numba
judges a cached kernel fresh by the source of the file that defines it alone, but the
kernels of this package inline each other across its modules (``kernel._decide``
holds ``probability._rect_p``, ``grid._grid_nearest``, ...): an edit of one module
would leave the kernels of the others loading stale code. So the decorators here
stamp each kernel's cache with the sources of every module of the package (any edit
recompiles them all, as when they were one file); kernels compiled from another
file's function (the index's helpers below) keep numba's own stamp.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba as nb
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
)

from geofence import _kernels

_PACKAGE = Path(__file__).resolve().parent


def _package_stamp() -> bytes:
    """SHA-256 over the names and contents of the package's modules."""
    h = hashlib.sha256()
    for p in sorted(_PACKAGE.glob("*.py")):
        h.update(p.name.encode())
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.digest()


class _PackageStamp:
    """A locator mixin: only for this package's files, stamped with all of them."""

    def get_source_stamp(self) -> bytes:
        return _package_stamp()

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if Path(py_file).resolve().parent != _PACKAGE:
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]


class _UserDirLocator(_PackageStamp, UserProvidedCacheLocator):
    pass


class _InTreeLocator(_PackageStamp, InTreeCacheLocator):
    pass


class _PackageCacheImpl(CompileResultCacheImpl):
    # this package's locators first (a NUMBA_CACHE_DIR before the tree, as numba's), then numba's
    _locator_classes = [  # noqa: RUF012 (numba's own attribute, a list)
        _UserDirLocator,
        _InTreeLocator,
        *CompileResultCacheImpl._locator_classes,
    ]


class _PackageCache(FunctionCache):
    _impl_class = _PackageCacheImpl


def _njit(**options: Any) -> Callable[[Any], Any]:
    """``numba.njit(cache=True, nogil=True, **options)``, cached with the package's stamp."""
    jit = nb.njit(cache=True, nogil=True, **options)

    def decorate(func: Any) -> Any:
        dispatcher = jit(func)
        dispatcher._cache = _PackageCache(func)  # numba's enable_caching, another stamp
        return dispatcher

    return decorate


_jit = _njit()
_jit_inline = _njit(inline="always")
# Numba's runtime (NRT) counts references to arrays with atomic increments and
# decrements wherever an array is passed on, even to inlined helpers; the batch kernel
# paid ~10 % of its time for them (perf, high-precision checks). A kernel that
# allocates nothing (its work arrays come from the caller, see _work_buffers) only
# borrows arrays its caller keeps alive, so it is compiled without the runtime: no
# counts at all. Numba refuses to compile such a kernel if it ever allocates. (``_nrt``
# is numba's own switch for this, used by its tests; its type stubs do not list it.)
_jit_borrowed = _njit(_nrt=False)

# Two of the index's helpers, compiled as functions that the kernels here call
# instead of inlining them (~16 calls per check): numba updates the reference count
# of each array an inlined helper takes at every call. Measured on the decision
# benchmark: 1.05-1.08x more checks/s; calling locate_one or _grid_nearest was slower.
_zone_closest = _jit(_kernels.zone_closest.py_func)
_insert = _jit_inline(_kernels._insert.py_func)
