"""A strict, numpy-backed stand-in for CuPy, so that CI can run the GPU path's data flow without a GPU.

``xp = StrictXP()`` goes where the GPU code expects ``cupy``. Its arrays (:class:`DeviceArray`) wrap numpy
arrays but behave like CuPy's where a mistake would otherwise pass unnoticed on the CPU:

- no implicit device → host conversion: ``np.asarray(d)``, ``np.concatenate([d])`` and ``for x in d``
  raise ``TypeError`` (``__array__`` with CuPy's message), a numba call fails to type the argument;
  ``.get()`` is the way to the host;
- no host array in a device operation: a numpy ndarray as an operand, index, assigned value or function
  argument raises :class:`HostArrayError`;
- only functions and arguments that CuPy has (the table below), refused with :class:`CupyLimitError`;
- every explicit copy is logged in ``xp.transfers`` (:class:`Transfer`), so a test can assert that no
  per-pair array came back to the host (:meth:`StrictXP.host_transfers`).

Stricter than CuPy on purpose: numpy ndarrays are refused as indices and values (CuPy copies them to the
device silently), and most numpy functions called on device arrays (``np.unique(d)``) raise where CuPy would
dispatch them to itself through ``__array_function__``: the code under test is to call ``xp``.

CuPy restrictions mirrored (CuPy 13.x, the floor of gpucdp's ``gpu`` extra; ``StrictXP(cupy_version=(14, 1))``
lifts the ``repeat`` one). Each entry: function, restriction, source (docs.cupy.dev pages unless marked).

repeat            a cupy.ndarray ``repeats`` raises ValueError before CuPy 14.1 (int, list or tuple only)
                  /en/v13.2.0/reference/generated/cupy.repeat.html; cupy/_core/_routines_manipulation.pyx;
                  github.com/cupy/cupy/issues/3849, pull/9828 (in 14.1 per data-apis/array-api-compat#312)
sort, argsort     ``kind`` only None or 'stable' (ValueError); always stable, so numpy is run stable too
                  /en/stable/reference/generated/cupy.argsort.html, .../cupy.sort.html; cupy/_core/core.pyx
argpartition      no ``kind``/``order``; CuPy fully sorts, so the stand-in returns a stable full argsort
                  /en/latest/reference/generated/cupy.argpartition.html
lexsort           ``keys`` one (k, N) cupy.ndarray: no tuple of arrays, no ``axis``, rank 3+ refused
                  /en/latest/reference/generated/cupy.lexsort.html; cupy/_sorting/sort.py
unique            (ar, return_index, return_inverse, return_counts, axis, *, equal_nan): no ``sorted``;
                  ``axis`` refused: a host quicksort in CuPy 13 (github.com/cupy/cupy/issues/8326), rows
                  grouped by a 32-bit CRC after pull/8328   /en/stable/reference/generated/cupy.unique.html
bincount          x a 1-D integer cupy.ndarray (TypeError 'x must be int array'), minlength >= 0; an empty x
                  raises ValueError in CuPy 13 (int(cupy.max(x)) first; github.com/cupy/cupy/issues/8116)
                  /en/latest/reference/generated/cupy.bincount.html; cupy/_statistics/histogram.py
searchsorted      ``v`` a cupy.ndarray (CuPy also takes an int: 'Only int or ndarray are supported for v');
                  cupy/_sorting/search.py
add/maximum/      ``ufunc.at`` exists for these three only (others raise NotImplementedError); with integer-
minimum.at        array indices only int32, uint32, uint64, float32, float64 (+ float16 for add): int64
                  raises TypeError. /en/latest/reference/ufunc.html, .../cupy.ufunc.html;
                  cupy/_core/_routines_indexing.pyx; github.com/cupy/cupy/pull/7077
take              no ``mode``                 /en/latest/reference/generated/cupy.take.html
take_along_axis   ``axis`` required           /en/stable/reference/generated/cupy.take_along_axis.html
einsum            no ``out``/``order``/``casting``  /en/latest/reference/generated/cupy.einsum.html
concatenate,      only cupy arrays ('Only cupy arrays can be concatenated'), no 0-d ones
stack             /en/latest/reference/generated/cupy.concatenate.html, .../cupy.stack.html
count_nonzero,    return 0-d arrays, not Python values; no ``keepdims``
array_equal       /en/latest/reference/generated/cupy.count_nonzero.html, .../cupy.array_equal.html
isin              no ``kind``                 /en/latest/reference/generated/cupy.isin.html
*_like            ``subok`` must be None (TypeError)  /en/latest/reference/generated/cupy.empty_like.html
ufuncs, operators Python lists refused ('Unsupported type'); cupy.ndarray or scalar operands only
                  /en/latest/reference/ufunc.html
all functions     CuPy's signatures (asarray, array, searchsorted, linalg.norm, ... pages of the same name):
                  an argument CuPy lacks (numpy's ``kind=`` of isin, ``out=`` of einsum) raises
"""

from __future__ import annotations

import inspect
import operator
import weakref
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CupyLimitError", "DeviceArray", "HostArrayError", "StrictXP", "Transfer"]

IMPLICIT_CONVERSION = ("Implicit conversion to a NumPy array is not allowed. "
                       "Please use `.get()` to construct a NumPy array explicitly.")
NO_ITERATION = ("iteration over a device array (StrictXP: a Python loop over a CuPy array reads it back one "
                "element at a time; use array operations, or .get() once)")
_SCALARS = (bool, int, float, complex, np.generic)


class HostArrayError(TypeError):
    """A numpy ndarray reached a device operation."""

    def __init__(self, where: str) -> None:
        super().__init__("host numpy array passed to a device operation; use xp.asarray "
                         f"(StrictXP, the CuPy stand-in: {where})")


class CupyLimitError(NotImplementedError, TypeError, ValueError):
    """An argument CuPy refuses; also a TypeError and a ValueError, so handlers written for CuPy catch it."""


class Transfer(NamedTuple):
    """One logged copy; ``kind`` is "to_host", "to_device" or "scalar" (a size-1 read such as ``int(d)``)."""

    kind: str
    nbytes: int
    shape: tuple[int, ...]
    dtype: np.dtype


def _check_kind(name: str, kind: str | None) -> None:
    if kind is not None and kind != "stable":
        raise CupyLimitError(f"{name}: kind can only be None or 'stable' (CuPy's sort is always stable)")


class DeviceArray:
    """A :class:`StrictXP` array: a numpy array (``._a``) that refuses to be used as a host array.

    Its attributes are those of ``cupy.ndarray`` that gpucdp uses: shape, size, ndim, dtype, nbytes,
    itemsize, strides, flags, T and the methods below.
    """

    __slots__ = ("__weakref__", "_a", "_xp")
    __array_ufunc__ = None  # numpy ufuncs refuse us; numpy operators defer to our reflected ones
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, a: np.ndarray, xp: StrictXP) -> None:
        self._a, self._xp = a, xp
        xp._allocate(self)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise TypeError(IMPLICIT_CONVERSION)

    def __iter__(self) -> Any:
        raise TypeError(NO_ITERATION)

    def __contains__(self, value: Any) -> bool:
        raise TypeError(NO_ITERATION)

    def __len__(self) -> int:
        return len(self._a)

    def __repr__(self) -> str:  # no values: printing a CuPy array copies it to the host
        return f"DeviceArray(shape={self._a.shape}, dtype={self._a.dtype})"

    @property
    def T(self) -> DeviceArray:
        return self._xp._wrap(self._a.T)

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.__array_interface__["data"][0], False),
                "strides": None if a.flags.c_contiguous else a.strides, "version": 3}

    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None,
            blocking: bool = True) -> np.ndarray:
        """Copy to the host (logged as "to_host"), like ``cupy.ndarray.get``."""
        self._xp._log("to_host", self._a)
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order)

    def tolist(self) -> list[Any]:
        """Python values of every element: a full copy to the host, logged as "to_host"."""
        self._xp._log("to_host", self._a)
        return self._a.tolist()

    def _scalar(self, convert: Callable[[Any], Any]) -> Any:
        if self._a.size != 1:
            return convert(self._a)  # numpy's own error
        self._xp._log("scalar", self._a)
        return convert(self._a.reshape(()).item())

    def __int__(self) -> int:
        return self._scalar(int)

    def __float__(self) -> float:
        return self._scalar(float)

    def __bool__(self) -> bool:
        return self._scalar(bool)

    def __index__(self) -> int:
        if self._a.size != 1 or self._a.dtype.kind not in "iu":
            raise TypeError("only integer scalar arrays can be converted to a scalar index")
        return self._scalar(int)

    def item(self) -> Any:
        """The value of a size-1 array (logged as "scalar")."""
        return self._scalar(lambda v: v.item() if isinstance(v, np.ndarray) else v)

    def __getitem__(self, key: Any) -> DeviceArray:
        return self._xp._wrap(self._a[self._xp._index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[self._xp._index(key)] = self._xp._unwrap(value, "an assigned value")

    def sort(self, axis: int = -1, kind: str | None = None) -> None:
        _check_kind("cupy.ndarray.sort", kind)
        self._a.sort(axis=axis, kind="stable")

    def argsort(self, axis: int | None = -1, kind: str | None = None) -> DeviceArray:
        return self._xp.argsort(self, axis, kind)

    def argpartition(self, kth: Any, axis: int | None = -1) -> DeviceArray:
        return self._xp.argpartition(self, kth, axis)

    def repeat(self, repeats: Any, axis: int | None = None) -> DeviceArray:
        return self._xp.repeat(self, repeats, axis)


def _attribute(name: str) -> property:
    return property(lambda self: getattr(self._a, name))


# numpy keywords that CuPy's ndarray methods of the same name lack (their signatures: take(indices, axis, out);
# max, min(axis, out, keepdims); sum, prod, mean(axis, dtype, out, keepdims); any, all(axis, out, keepdims))
_NUMPY_ONLY_KEYWORDS = {"take": {"mode"}, "max": {"initial", "where"}, "min": {"initial", "where"},
                        "sum": {"initial", "where"}, "prod": {"initial", "where"}, "mean": {"where"},
                        "any": {"where"}, "all": {"where"}}


def _method(name: str) -> Callable[..., Any]:
    def method(self: DeviceArray, *args: Any, **kwargs: Any) -> Any:
        lacking = _NUMPY_ONLY_KEYWORDS.get(name, set()) & set(kwargs)
        if lacking:
            raise CupyLimitError(f"cupy.ndarray.{name} has no {', '.join(sorted(lacking))} argument")
        args, kwargs = self._xp._unwrap((args, kwargs), f"cupy.ndarray.{name}")
        return self._xp._wrap(getattr(self._a, name)(*args, **kwargs))
    method.__name__ = name
    return method


def _binary(fn: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[..., Any]:
    def method(self: DeviceArray, other: Any) -> DeviceArray:
        other = self._xp._operand(other)
        return self._xp._wrap(fn(other, self._a) if reflected else fn(self._a, other))
    return method


def _unary(fn: Callable[[Any], Any]) -> Callable[..., Any]:
    def method(self: DeviceArray) -> DeviceArray:
        return self._xp._wrap(fn(self._a))
    return method


def _inplace(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def method(self: DeviceArray, other: Any) -> DeviceArray:
        fn(self._a, self._xp._operand(other))  # numpy's in-place operator writes into self._a
        return self
    return method


for _name in ("shape", "size", "ndim", "dtype", "nbytes", "itemsize", "strides", "flags"):
    setattr(DeviceArray, _name, _attribute(_name))
for _name in ("astype", "ravel", "reshape", "view", "copy", "sum", "min", "max", "any", "all", "mean",
              "cumsum", "argmax", "argmin", "nonzero", "fill", "transpose", "flatten", "squeeze", "take",
              "clip", "prod", "dot", "swapaxes"):
    setattr(DeviceArray, _name, _method(_name))
for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor",
              "lshift", "rshift"):
    _fn = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(DeviceArray, f"__{_name}__", _binary(_fn))
    setattr(DeviceArray, f"__r{_name}__", _binary(_fn, reflected=True))
    setattr(DeviceArray, f"__i{_name}__", _inplace(getattr(operator, "i" + _name)))
for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    setattr(DeviceArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(DeviceArray, f"__{_name}__", _unary(getattr(operator, _name)))


def _cupy(rules: str = "", raw: bool = False) -> Callable[[Any], Any]:
    """Mark a :class:`StrictXP` method as the CuPy function of the same signature (see :func:`_function`)."""
    def mark(fn: Any) -> Any:
        fn._cupy = (rules, raw)
        return fn
    return mark


def _function(name: str, signature: inspect.Signature, rules: str, impl: Callable[..., Any],
              raw: bool = False) -> Callable[..., Any]:
    """A :class:`StrictXP` method with CuPy's ``signature`` that runs ``impl(xp, *numpy_args)``.

    ``rules`` names the parameters that must be cupy arrays ("x~": or a scalar; "x[]": a sequence of them,
    or the variadic ones). ``raw`` passes the arguments unconverted and returns ``impl``'s result as it is.
    """
    shown = f"cupy.{name}{signature}"

    def call(self: StrictXP, *args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise CupyLimitError(f"{shown}: {exc}") from None
        bound.apply_defaults()  # every positional-or-keyword argument now goes by position, in CuPy's order
        for rule in rules.split():
            self._require(name, rule, bound.arguments[rule.rstrip("~[]")])
        if raw:
            return impl(self, *bound.args, **bound.kwargs)
        out = bound.arguments.get("out")
        args, kwargs = self._unwrap((bound.args, bound.kwargs), f"cupy.{name}")
        result = impl(self, *args, **kwargs)
        return out if isinstance(out, DeviceArray) and result is out._a else self._wrap(result)

    call.__name__, call.__doc__ = name, f"{shown}, run by numpy."
    return call


# add.at is an atomicAdd kernel: these are the dtypes CuPy's _scatter_op accepts with integer-array indices
_AT_DTYPES = {"add": ("int32", "float16", "float32", "float64", "uint32", "uint64"),
              "maximum": ("int32", "float32", "float64", "uint32", "uint64"),
              "minimum": ("int32", "float32", "float64", "uint32", "uint64")}


class _UFunc:
    """A CuPy ufunc: operands are cupy arrays or scalars; ``at`` only where CuPy has it."""

    def __init__(self, xp: StrictXP, name: str) -> None:
        self._xp, self.__name__, self._ufunc = xp, name, getattr(np, name)

    def __call__(self, *args: Any, out: DeviceArray | None = None, dtype: Any = None,
                 casting: str = "same_kind") -> Any:
        operands = [self._xp._operand(a) for a in args]
        if out is None:
            return self._xp._wrap(self._ufunc(*operands, dtype=dtype, casting=casting))
        target = self._xp._unwrap(out, f"cupy.{self.__name__}")
        self._ufunc(*operands, out=target, dtype=dtype, casting=casting)
        return out

    def at(self, a: DeviceArray, indices: Any, b: Any = None) -> None:
        """In-place ``a[indices] op= b``, with CuPy's dtype limits when an index is an integer array."""
        if self.__name__ not in _AT_DTYPES:
            raise CupyLimitError(f"`cupy_{self.__name__}.at` is not supported yet")
        self._xp._require(f"{self.__name__}.at", "a", a)
        index = self._xp._index(indices)
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, list) or isinstance(p, np.ndarray) and p.dtype.kind in "iu" for p in parts) \
                and a.dtype.name not in _AT_DTYPES[self.__name__]:
            raise CupyLimitError(f"cupy.{self.__name__}.at only supports "
                                 f"{', '.join(_AT_DTYPES[self.__name__])} as data type, not {a.dtype}")
        self._ufunc.at(a._a, index, *(() if b is None else (self._xp._operand(b),)))


class _MemoryPool:
    """``cupy.get_default_memory_pool()``: holds the peak of live device bytes until ``free_all_blocks``."""

    def __init__(self, xp: StrictXP) -> None:
        self._xp = xp

    def free_all_blocks(self) -> None:
        self._xp._peak = self._xp._live_bytes

    def total_bytes(self) -> int:
        return self._xp._peak

    def used_bytes(self) -> int:
        return self._xp._live_bytes


class _Device:
    def __init__(self, device: int | None = None) -> None:
        self.id = device or 0

    def synchronize(self) -> None:
        """Nothing to wait for: numpy ran synchronously."""


class StrictXP:
    """The stand-in module: ``xp.zeros(...)``, ``xp.int64``, ``xp.cuda.runtime.memGetInfo()``, ...

    Parameters
    ----------
    device_bytes : int
        Total memory of the pretend device, as ``xp.cuda.runtime.memGetInfo()`` reports it.
    cupy_version : tuple of int
        The CuPy whose limits to mirror where they changed after 13.0 (``repeat`` of an array, in 14.1).

    Attributes
    ----------
    transfers : list of Transfer
        Every explicit copy, in order; :meth:`reset_transfers` empties it.
    """

    ndarray = DeviceArray
    bool_, int8, int16, int32, int64 = np.bool_, np.int8, np.int16, np.int32, np.int64
    uint8, uint16, uint32, uint64 = np.uint8, np.uint16, np.uint32, np.uint64
    float16, float32, float64, intp = np.float16, np.float32, np.float64, np.intp
    dtype, iinfo, finfo = np.dtype, np.iinfo, np.finfo
    nan, inf, pi, newaxis = np.nan, np.inf, np.pi, None

    def __init__(self, device_bytes: int = 8 * 2**30, cupy_version: tuple[int, int] = (13, 0)) -> None:
        self.transfers: list[Transfer] = []
        self.device_bytes, self.cupy_version = device_bytes, cupy_version
        self._held: dict[int, list[int]] = {}  # id of a root buffer -> [its nbytes, wrappers alive]
        self._live_bytes = self._peak = 0
        self._pool = _MemoryPool(self)
        self.cuda = SimpleNamespace(runtime=SimpleNamespace(memGetInfo=self._mem_get_info), Device=_Device)
        self.linalg = SimpleNamespace(norm=self._linalg_norm)
        for name in _UFUNCS:
            setattr(self, name, _UFunc(self, name))

    def reset_transfers(self) -> None:
        self.transfers.clear()

    def host_transfers(self, min_elements: int = 0) -> list[Transfer]:
        """Device → host copies ("to_host" and "scalar") of at least ``min_elements`` elements."""
        return [t for t in self.transfers
                if t.kind != "to_device" and int(np.prod(t.shape, dtype=np.int64)) >= min_elements]

    def host_bytes(self, min_elements: int = 0) -> int:
        """Bytes copied device → host in copies of at least ``min_elements`` elements."""
        return sum(t.nbytes for t in self.host_transfers(min_elements))

    def get_default_memory_pool(self) -> _MemoryPool:
        return self._pool

    def _mem_get_info(self) -> tuple[int, int]:
        return max(self.device_bytes - self._live_bytes, 0), self.device_bytes

    def _log(self, kind: str, a: np.ndarray) -> None:
        self.transfers.append(Transfer(kind, int(a.nbytes), tuple(a.shape), a.dtype))

    def _allocate(self, d: DeviceArray) -> None:
        root = d._a  # a view holds its root's memory, as a CuPy view does
        while isinstance(root.base, np.ndarray):
            root = root.base
        held = self._held.setdefault(id(root), [int(root.nbytes), 0])
        if held[1] == 0:
            self._live_bytes += held[0]
            self._peak = max(self._peak, self._live_bytes)
        held[1] += 1
        weakref.finalize(d, self._release, id(root)).atexit = False

    def _release(self, key: int) -> None:
        held = self._held[key]
        held[1] -= 1
        if held[1] == 0:
            del self._held[key]
            self._live_bytes -= held[0]

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, np.ndarray):
            return DeviceArray(result, self)
        if isinstance(result, _SCALARS):  # CuPy returns 0-d arrays where numpy returns scalars
            return DeviceArray(np.asarray(result), self)
        if isinstance(result, tuple):
            return tuple(self._wrap(r) for r in result)
        return result

    def _unwrap(self, value: Any, where: str) -> Any:
        if isinstance(value, DeviceArray):
            return value._a
        if isinstance(value, np.ndarray):
            raise HostArrayError(where)
        if isinstance(value, (list, tuple)):
            items = [self._unwrap(v, where) for v in value]
            return items if isinstance(value, list) else tuple(items)
        if isinstance(value, dict):
            return {k: self._unwrap(v, where) for k, v in value.items()}
        return value

    def _index(self, key: Any) -> Any:
        return self._unwrap(key, "an index")  # CuPy copies a list index to the device, numpy takes it as is

    def _operand(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)} (StrictXP mirrors CuPy's operators and ufuncs)")
        return self._unwrap(value, "an operand")

    def _require(self, name: str, rule: str, value: Any) -> None:
        param = rule.rstrip("~[]")
        values = value if rule.endswith("[]") and isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, np.ndarray):
                raise HostArrayError(f"cupy.{name}, argument {param!r}")
            scalar_ok = rule.endswith("~") and isinstance(v, _SCALARS)
            if not (v is None or isinstance(v, DeviceArray) or scalar_ok):
                raise CupyLimitError(f"cupy.{name}: {param!r} must be a cupy.ndarray, not {type(v).__name__}")

    def _to_device(self, host: np.ndarray) -> DeviceArray:
        self._log("to_device", host)
        return DeviceArray(host, self)

    @_cupy(raw=True)
    def asarray(self, a, dtype=None, order=None, *, copy=None, blocking=False):
        if isinstance(a, DeviceArray):
            if dtype is None and not copy:
                return a
            return a.astype(a.dtype if dtype is None else dtype, copy=bool(copy))
        if copy is False:
            raise ValueError("cupy.asarray(copy=False): a host object cannot reach the device without a copy")
        return self._to_device(np.array(a, dtype=dtype, order=order or "K"))

    @_cupy(raw=True)
    def array(self, obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
        if isinstance(obj, DeviceArray):
            return self._wrap(np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
        return self._to_device(np.array(obj, dtype=dtype, order=order, ndmin=ndmin))

    @_cupy(raw=True)
    def asnumpy(self, a, stream=None, order="C", out=None, *, blocking=True):
        return a.get(order=order, out=out) if isinstance(a, DeviceArray) else np.asarray(a, order=order)

    def _like(self, fn: Callable[..., np.ndarray], subok: Any, *args: Any, shape: Any) -> np.ndarray:
        if subok is not None:
            raise CupyLimitError("subok is not supported yet")
        return fn(*args, shape=shape)

    @_cupy("prototype")
    def empty_like(self, prototype, dtype=None, order="K", subok=None, shape=None):
        return self._like(np.empty_like, subok, prototype, dtype, order, shape=shape)

    @_cupy("a")
    def zeros_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self._like(np.zeros_like, subok, a, dtype, order, shape=shape)

    @_cupy("a fill_value~")
    def full_like(self, a, fill_value, dtype=None, order="K", subok=None, shape=None):
        return self._like(np.full_like, subok, a, fill_value, dtype, order, shape=shape)

    @_cupy("tup[]")
    def concatenate(self, tup, axis=0, out=None, *, dtype=None, casting="same_kind"):
        if any(t.ndim == 0 for t in tup):
            raise CupyLimitError("zero-dimensional arrays cannot be concatenated")
        return np.concatenate(tup, axis, out, dtype=dtype, casting=casting)

    @_cupy("a", raw=True)
    def repeat(self, a, repeats, axis=None):
        if isinstance(repeats, DeviceArray) and self.cupy_version < (14, 1):
            raise CupyLimitError("cupy.ndaray cannot be specified as `repeats` argument. (CuPy < 14.1: pass "
                                 "an int or a host list, or build the result with cumsum + searchsorted)")
        return self._wrap(np.repeat(a._a, self._unwrap(repeats, "cupy.repeat"), axis))

    @_cupy("condition x~ y~")
    def where(self, condition, x=None, y=None):
        return np.where(condition) if x is None and y is None else np.where(condition, x, y)

    @_cupy("a prepend~ append~")
    def diff(self, a, n=1, axis=-1, prepend=None, append=None):
        ends = {k: v for k, v in (("prepend", prepend), ("append", append)) if v is not None}
        return np.diff(a, n, axis, **ends)

    @_cupy("a")
    def sort(self, a, axis=-1, kind=None):
        _check_kind("cupy.sort", kind)
        return np.sort(a, axis, kind="stable")

    @_cupy("a")
    def argsort(self, a, axis=-1, kind=None):
        _check_kind("cupy.argsort", kind)
        return np.argsort(a, axis, kind="stable")

    @_cupy("a")
    def argpartition(self, a, kth, axis=-1):
        return np.argsort(a, axis, kind="stable")  # CuPy's argpartition is a full (stable) argsort

    @_cupy("keys")
    def lexsort(self, keys):
        if keys.ndim != 2:
            raise CupyLimitError(f"cupy.lexsort takes one (k, N) array of keys, not a {keys.ndim}-d one")
        return np.lexsort(keys)

    @_cupy("a")
    def argmax(self, a, axis=None, dtype=None, out=None, keepdims=False):
        result = np.argmax(a, axis, out, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype)

    @_cupy("x weights")
    def bincount(self, x, weights=None, minlength=None):
        if x.dtype.kind == "f":
            raise CupyLimitError("x must be int array")
        if x.ndim != 1:
            raise CupyLimitError(f"cupy.bincount takes a 1-d array, not a {x.ndim}-d one")
        if x.size == 0:  # CuPy 13 sizes the result by int(cupy.max(x)) before it reads minlength
            raise ValueError("zero-size array to reduction operation maximum which has no identity")
        return np.bincount(x, weights, minlength or 0)

    @_cupy("ar")
    def unique(self, ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
               equal_nan=True):
        if axis is not None:
            raise CupyLimitError("cupy.unique(axis=...) is a host-side quicksort with a sync per comparison "
                                 "in CuPy 13 and groups rows by a 32-bit CRC later: group rows with lexsort")
        return np.unique(ar, return_index, return_inverse, return_counts, equal_nan=equal_nan)

    @_cupy("operands[]")
    def einsum(self, subscripts, *operands, dtype=None, optimize=False):
        return np.einsum(subscripts, *operands, dtype=dtype, optimize=optimize)


def _run_numpy(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda _xp, *args, **kwargs: fn(*args, **kwargs)


_UFUNCS = ("minimum", "maximum", "fmax", "fmin", "add", "divide", "negative", "abs", "log", "log1p", "log2", "exp",
           "exp2", "rint", "sqrt", "isnan", "isfinite", "logical_and", "logical_or", "logical_not")

# CuPy functions that numpy runs with the same arguments in the same order:
# name -> (CuPy's parameters, the ones that must be cupy arrays as in _function's rules)
_SAME_AS_NUMPY = {
    "empty": ("shape, dtype=float, order='C'", ""),
    "zeros": ("shape, dtype=float, order='C'", ""),
    "ones": ("shape, dtype=float, order='C'", ""),
    "full": ("shape, fill_value, dtype=None, order='C'", "fill_value~"),
    "arange": ("start, stop=None, step=1, dtype=None", ""),
    "stack": ("tup, axis=0, out=None, *, dtype=None, casting='same_kind'", "tup[]"),
    "broadcast_to": ("array, shape", "array"),
    "take": ("a, indices, axis=None, out=None", "a"),
    "take_along_axis": ("a, indices, axis", "a indices"),
    "clip": ("a, a_min, a_max, out=None", "a a_min~ a_max~"),
    "searchsorted": ("a, v, side='left', sorter=None", "a v sorter"),
    "nonzero": ("a", "a"),
    "flatnonzero": ("a", "a"),
    "count_nonzero": ("a, axis=None", "a"),
    "isin": ("element, test_elements, assume_unique=False, invert=False", "element test_elements"),
    "array_equal": ("a1, a2, equal_nan=False", "a1 a2"),
    "sum": ("a, axis=None, dtype=None, out=None, keepdims=False", "a"),
    "mean": ("a, axis=None, dtype=None, out=None, keepdims=False", "a"),
    "cumsum": ("a, axis=None, dtype=None, out=None", "a"),
    "any": ("a, axis=None, out=None, keepdims=False", "a"),
    "all": ("a, axis=None, out=None, keepdims=False", "a"),
    "matmul": ("x1, x2, out=None", "x1 x2"),
    "linalg.norm": ("x, ord=None, axis=None, keepdims=False", "x"),
}

for _name, _fn in list(vars(StrictXP).items()):
    if hasattr(_fn, "_cupy"):
        _rules, _raw = _fn._cupy
        _signature = inspect.signature(_fn)
        _signature = _signature.replace(parameters=list(_signature.parameters.values())[1:])  # drop self
        setattr(StrictXP, _name, _function(_name, _signature, _rules, _fn, _raw))
for _name, (_params, _rules) in _SAME_AS_NUMPY.items():
    _signature = inspect.signature(eval(f"lambda {_params}: None"))  # CuPy's signature, from our own table
    setattr(StrictXP, "_" + _name.replace(".", "_") if "." in _name else _name,
            _function(_name, _signature, _rules, _run_numpy(operator.attrgetter(_name)(np))))
