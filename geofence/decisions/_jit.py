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
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
)
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array

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


# ---- arguments handed over once: borrowed arrays

# Numba unboxes every array argument at every call into a fresh memory record
# (~100 ns each, more on a loaded machine): the single-check path hands the kernel
# ~75 arrays (the index's grid, the service area's, the tables), ~11 us of its ~20.
# :func:`borrow` instead flattens such a nested tuple once into two small arrays
# (each array's address, shape and strides; each scalar's value), and
# :func:`_unborrow`, inside the compiled code, rebuilds the tuple from them: arrays
# without a memory record (numba's own convention for arrays it does not own, as
# ``numba.carray`` makes), no reference counting. The caller keeps the original
# tuple alive while it uses the flattened form.


def borrow(obj: tuple[Any, ...]) -> tuple[Any, np.ndarray, np.ndarray]:
    """(numba type of ``obj``, int64 array layout, float64 scalars) of a nested tuple
    of arrays and numbers, for :func:`_unborrow`."""
    layout: list[int] = []
    scalars: list[float] = []

    def walk(o: Any) -> None:
        if isinstance(o, tuple):
            for e in o:
                walk(e)
        elif isinstance(o, np.ndarray):
            layout.append(o.ctypes.data)
            layout.extend(o.shape)
            layout.extend(o.strides)
        elif isinstance(o, bool | int | float | np.number | np.bool_):
            scalars.append(float(o))
        else:
            raise TypeError(f"cannot borrow a {type(o).__name__}")

    walk(obj)
    return nb.typeof(obj), np.array(layout, np.int64), np.array(scalars, np.float64)


@intrinsic
def _unborrow(typingctx, tref, layout, scalars):
    """The tuple :func:`borrow` flattened, rebuilt: ``tref`` its type (a type as an
    argument), ``layout`` and ``scalars`` the two arrays."""
    if not isinstance(tref, types.TypeRef):
        return None
    ty = tref.instance_type

    def codegen(context, builder, signature, args):
        lay = context.make_array(signature.args[1])(context, builder, args[1])
        sca = context.make_array(signature.args[2])(context, builder, args[2])
        i64 = ir.IntType(64)
        pos = [0, 0]

        def word(i):
            return builder.load(builder.gep(lay.data, [i64(i)]))

        def build(t):
            if isinstance(t, types.BaseTuple):
                return context.make_tuple(builder, t, [build(e) for e in t.types])
            if isinstance(t, types.Array):
                i = pos[0]
                pos[0] += 1 + 2 * t.ndim
                dtype = context.get_data_type(t.dtype)
                ary = context.make_array(t)(context, builder)
                populate_array(
                    ary,
                    data=builder.inttoptr(word(i), dtype.as_pointer()),
                    shape=cgutils.pack_array(builder, [word(i + 1 + d) for d in range(t.ndim)]),
                    strides=cgutils.pack_array(
                        builder, [word(i + 1 + t.ndim + d) for d in range(t.ndim)]
                    ),
                    itemsize=context.get_constant(types.intp, context.get_abi_sizeof(dtype)),
                    meminfo=None,
                )
                return ary._getvalue()
            j = pos[1]
            pos[1] += 1
            v = builder.load(builder.gep(sca.data, [i64(j)]))
            return context.cast(builder, v, types.float64, t)

        return build(ty)

    return ty(tref, layout, scalars), codegen
