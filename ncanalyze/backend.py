"""Array backends: the only module that imports CuPy or PyTorch, and only when asked to.

The computation core never imports an array library; it takes the namespace from its inputs
(array-api-compat). This module

* picks a backend by name (:func:`get_backend`) and moves NumPy chunks read from a file onto
  its device (:attr:`Backend.asarray`);
* is the one way back to the host (:func:`to_numpy`, :func:`to_numpy_many`) and the one place
  that drops autograd tracking (:func:`detach`);
* holds the linear algebra the array API lacks or leaves unspecified (:func:`cholesky`, whose
  failure each library signals differently, and :func:`native_solve_lower`, the libraries'
  triangular solvers; the generic one is :func:`ncanalyze.core.linalg.solve_lower`).

Backend names (docs/PERFORMANCE.md says what each costs):

``numpy``; ``cupy``; ``torch`` (CUDA device 0 when CUDA is usable, else the CPU),
``torch:cpu``, ``torch:cuda``, ``torch:cuda:<index>``; ``auto``: CuPy when a CUDA device is
usable, else PyTorch on CUDA, else NumPy. ``array_api_strict`` and
``array_api_strict:<device>`` are test backends. An unknown name is a usage error (exit 2); a
known backend that cannot run here is a :class:`~ncanalyze.errors.BackendError` (exit 4).

One module above ~350 lines on purpose: it is the only code that knows array libraries by
name (the import contract lets nothing else import CuPy or PyTorch), and each of its four
parts — names, uploads, host transfers, library-specific linear algebra — is short.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from array_api_compat import array_namespace, is_cupy_namespace, is_torch_namespace

from .errors import BackendError, UsageError

#: The names ``--backend`` accepts (``torch:cuda:<index>`` for any device index).
BACKENDS = ("auto", "numpy", "cupy", "torch", "torch:cpu", "torch:cuda", "torch:cuda:<index>")
_TORCH_NAME = re.compile(r"^torch(?::(cpu|cuda)(?::(\d+))?)?$")


@dataclass(frozen=True)
class Backend:
    """An array namespace, its device and the upload the orchestration layer needs.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"cupy"``, ``"torch:cpu"``, ``"torch:cuda:0"``, … or, for tests,
        ``"array_api_strict"`` / ``"array_api_strict:device1"``.
    xp : module
        The array-API namespace (array-api-compat wrapped where needed).
    asarray : callable
        ``asarray(ndarray, dtype)``: a NumPy array as a backend array of that dtype (a NumPy
        dtype or its name) on :attr:`device`.
    device : object or None
        The device arrays are created on (``None``: the namespace's default).
    """

    name: str
    xp: Any
    asarray: Callable[[np.ndarray, Any], Any]
    device: Any = None


# ---------------------------------------------------------------------- host transfers


def to_numpy(array: Any) -> np.ndarray:
    """``array`` as a NumPy array on the host: the one device-to-host transfer.

    Accepts NumPy arrays (returned as they are), PyTorch tensors on any device (detached
    first: no autograd warning, no copy for CPU tensors), CuPy arrays, array-api-strict arrays
    on any of its devices, and anything exposing ``__array__`` or ``__dlpack__`` (JAX, …) or
    convertible by ``np.asarray`` (lists, Python scalars), without importing those libraries.

    Raises
    ------
    UsageError
        When ``array`` cannot be converted.
    """
    if isinstance(array, np.ndarray):
        return array
    module = type(array).__module__
    if module.startswith("torch"):
        return _torch_to_numpy(array)
    if module.startswith("cupy"):
        return array.get()
    if module.startswith("array_api_strict"):
        import array_api_strict as xs

        return np.asarray(array.to_device(xs.Device("CPU_DEVICE")))
    if hasattr(array, "__array__"):
        try:
            return np.asarray(array)
        except Exception:  # e.g. an accelerator array that refuses implicit conversion
            pass
    if hasattr(array, "__dlpack__"):
        try:
            return np.from_dlpack(array)
        except Exception:  # a device array: NumPy imports host memory only
            pass
    if hasattr(array, "cpu"):  # a tensor type on an accelerator
        try:
            return np.asarray(array.cpu())
        except Exception:
            pass
    try:
        arr = np.asarray(array)
    except Exception:
        arr = None
    if arr is not None and arr.dtype != object:
        return arr
    raise UsageError(f"cannot convert {type(array).__name__} to a NumPy array")


def _torch_to_numpy(array) -> np.ndarray:
    """A dense tensor on the host; float types NumPy lacks (bfloat16, float8) become float32.
    ``UsageError`` for a sparse or meta tensor, or another dtype NumPy lacks."""
    t = array.detach()
    if str(t.layout) != "torch.strided":
        raise UsageError(f"a {t.layout} tensor is not a dense array; pass tensor.to_dense()")
    if t.device.type == "meta":
        raise UsageError("a tensor on the meta device holds no data")
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    try:
        return t.numpy()
    except TypeError:  # no NumPy dtype: bfloat16, float8_*, …
        if t.is_floating_point():
            return t.float().numpy()
        raise UsageError(f"a tensor of dtype {t.dtype} has no NumPy equivalent") from None


def to_numpy_many(*arrays) -> list[np.ndarray]:
    """Several device arrays of one namespace and dtype as NumPy, in one transfer.

    On a GPU every separate copy waits for the device; the arrays are flattened into one
    buffer on the device, copied once and split on the host. NumPy inputs are returned as
    they are.

    Parameters
    ----------
    *arrays : arrays of one namespace, one device and one dtype, any shapes

    Returns
    -------
    list of ndarray
        Same shapes, in order.
    """
    if not arrays or all(isinstance(a, np.ndarray) for a in arrays):
        return [np.asarray(a) for a in arrays]
    xp = array_namespace(*arrays)
    flat = xp.concat([xp.reshape(a, (-1,)) for a in arrays])
    host = to_numpy(flat)
    out, start = [], 0
    for a in arrays:
        size = int(np.prod(a.shape, dtype=np.int64))
        out.append(host[start:start + size].reshape(tuple(a.shape)))
        start += size
    return out


def host_view(array: Any) -> np.ndarray | None:
    """``array`` as a NumPy array sharing its memory when it lives in host memory (NumPy, or a
    torch CPU tensor of a NumPy dtype), else ``None``."""
    if isinstance(array, np.ndarray):
        return array
    if type(array).__module__.startswith("torch") and array.device.type == "cpu" \
            and str(array.dtype) != "torch.bfloat16" and not array.is_conj():
        return array.detach().numpy()
    return None


def detach(array: Any) -> Any:
    """``array`` without autograd tracking (a view, no copy); other arrays unchanged."""
    if getattr(array, "requires_grad", False) and type(array).__module__.startswith("torch"):
        return array.detach()
    return array


def scatter_add_rows(values, labels, num_classes: int):
    """Per-label row sums by torch ``index_add``/CuPy ``scatter_add`` (O(rows·cols)), else None."""
    shape = (num_classes,) + tuple(values.shape[1:])
    if type(values).__module__.startswith("torch"):
        return values.new_zeros(shape).index_add_(0, labels.long(), values)
    if type(values).__module__.startswith("cupy"):
        import cupy
        import cupyx

        out = cupy.zeros(shape, dtype=values.dtype)
        cupyx.scatter_add(out, labels, values)
        return out
    return None


# ---------------------------------------------------------------------- linear algebra


def cholesky(a):
    """Lower Cholesky factor of a symmetric matrix, or ``None`` when the factorisation fails.

    NumPy and array-api-strict raise ``LinAlgError`` (a ``ValueError``), PyTorch raises its
    own ``LinAlgError`` (a ``RuntimeError``; ``cholesky_ex`` reports it without raising),
    CuPy returns NaN: every failure comes back as ``None`` here, NaN left for the caller to
    check.

    Parameters
    ----------
    a : array, shape (n, n)
    """
    xp = array_namespace(a)
    if is_torch_namespace(xp):
        torch = sys.modules["torch"]
        lower, info = torch.linalg.cholesky_ex(a)
        return lower if int(info) == 0 else None
    try:
        return xp.linalg.cholesky(a)
    except ValueError:
        return None


def native_solve_lower(lower, b):
    """L^{-1} b by PyTorch's or CuPy's triangular solver (``lower`` (n, n) lower-triangular,
    ``b`` (n, k)); ``None`` for other namespaces (:func:`ncanalyze.core.linalg.solve_lower`)."""
    xp = array_namespace(lower, b)
    if is_torch_namespace(xp):
        return sys.modules["torch"].linalg.solve_triangular(lower, b, upper=False)
    if is_cupy_namespace(xp):
        from cupyx.scipy.linalg import solve_triangular

        return solve_triangular(lower, b, lower=True)
    return None


# ---------------------------------------------------------------------- backends


def _native(dtype) -> np.dtype:
    """``dtype`` in native byte order (files may store big-endian numbers)."""
    return np.dtype(dtype).newbyteorder("=")


def _numpy_backend() -> Backend:
    import array_api_compat.numpy as xnp

    return Backend("numpy", xnp, lambda a, dtype: np.asarray(a, dtype=dtype))


def _strict_backend(device: str | None) -> Backend:
    try:
        import array_api_strict as xs
    except ImportError as exc:  # pragma: no cover - test-only backend
        raise BackendError("array_api_strict is not installed") from exc
    dev = xs.Device(device) if device else None
    name = "array_api_strict" + (f":{device}" if device else "")

    def upload(a, dtype):
        arr = np.asarray(a, dtype=dtype)
        if arr.dtype == np.float16:  # not an array-API dtype; float32 holds it exactly
            arr = arr.astype(np.float32)
        return xs.asarray(arr, device=dev)

    return Backend(name, xs, upload, dev)


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cp = importlib.import_module("cupy")
        return cp.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _cuda_driver_present() -> bool:
    """Whether an NVIDIA driver looks present: file checks only (no array library imported,
    no subprocess)."""
    windir = os.environ.get("SystemRoot", r"C:\Windows")
    return any(os.path.exists(p) for p in (
        "/proc/driver/nvidia/version", "/dev/nvidiactl",  # Linux
        "/usr/lib/wsl/lib/libcuda.so.1",  # WSL
        os.path.join(windir, "System32", "nvcuda.dll")))  # Windows


def torch_cuda_available() -> bool:
    """True when PyTorch imports and sees at least one CUDA device (imports torch)."""
    try:
        torch = importlib.import_module("torch")
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:
        return False


def _cupy_backend() -> Backend:
    try:
        cp = importlib.import_module("cupy")
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendError(
            f"backend 'cupy' is unavailable ({type(exc).__name__}: {exc}); "
            "install the 'cuda' extra on a machine with a CUDA GPU or use --backend numpy"
        ) from exc
    if count < 1:
        raise BackendError("backend 'cupy' is unavailable: no CUDA device found")
    import array_api_compat.cupy as xcp

    return Backend("cupy", xcp, lambda a, dtype: cp.asarray(np.asarray(a), dtype=_native(dtype)))


def _torch_backend(kind: str | None, index: str | None) -> Backend:
    """PyTorch on ``kind`` (``"cpu"``, ``"cuda"``; ``None``: CUDA when usable, else CPU)."""
    label = "torch" + (f":{kind}" if kind else "") + (f":{index}" if index else "")
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        raise BackendError(
            f"backend {label!r} is unavailable ({type(exc).__name__}: {exc}); install the "
            "'torch' extra (pip install 'ncanalyze[torch]') or use --backend numpy") from exc
    if kind is None:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        i = int(index or 0)
        if count < 1:
            raise BackendError(f"backend {label!r} is unavailable: PyTorch sees no CUDA device "
                               f"(torch {torch.__version__}); use --backend torch:cpu")
        if i >= count:
            raise BackendError(f"backend {label!r} is unavailable: CUDA device {i} does not "
                               f"exist ({count} device(s))")
        device = torch.device("cuda", i)
        upload: Callable = _PinnedUpload(torch, device)
    else:
        device = torch.device("cpu")
        upload = _torch_cpu_upload(torch)
    import array_api_compat.torch as xt

    return Backend(f"torch:{device.type}" + (f":{device.index}" if kind == "cuda" else ""),
                   xt, upload, device)


def _torch_cpu_upload(torch) -> Callable:
    def upload(a: np.ndarray, dtype):
        arr = np.asarray(a, dtype=_native(dtype))
        if not arr.flags.writeable:  # torch.from_numpy warns on read-only memory
            arr = arr.copy()
        return torch.from_numpy(np.ascontiguousarray(arr))  # shares the NumPy buffer

    return upload


class _PinnedUpload:
    """Host → CUDA copies through a ring of page-locked buffers on a copy stream.

    Each array is copied into the next pinned buffer (a host memcpy) and sent with a
    non-blocking copy on a separate stream; the compute stream waits for that copy on the
    device, not the host, so the host thread returns at once and the reader thread keeps
    reading the next chunk from HDF5 while the GPU copies and computes. A buffer is reused
    ``SLOTS`` uploads later, after waiting for the event of its previous copy (long
    finished: there is no per-chunk synchronisation of the host with the device).

    Not exercised by the default test suite (it needs a CUDA device): see tests/core/test_gpu.py.
    """

    #: Pinned buffers in the ring: the reader's prefetch depth plus the chunk being computed
    #: on plus one in flight.
    SLOTS = 4

    def __init__(self, torch, device):
        self.torch = torch
        self.device = device
        self.copy_stream = torch.cuda.Stream(device=device)
        self.buffers: list[Any] = [None] * self.SLOTS
        self.events: list[Any] = [None] * self.SLOTS
        self.next = 0

    def __call__(self, a: np.ndarray, dtype):
        torch = self.torch
        arr = np.ascontiguousarray(a, dtype=_native(dtype))
        tdtype = torch.from_numpy(np.empty(0, dtype=arr.dtype)).dtype
        slot = self.next
        self.next = (slot + 1) % self.SLOTS
        if self.events[slot] is not None:
            self.events[slot].synchronize()
        nbytes = max(arr.nbytes, 1)
        if self.buffers[slot] is None or self.buffers[slot].numel() < nbytes:
            self.buffers[slot] = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        host = self.buffers[slot][:arr.nbytes]
        host.numpy()[...] = arr.reshape(-1).view(np.uint8)
        compute = torch.cuda.current_stream(self.device)
        # No wait for the compute stream: the caching allocator keeps memory that the compute
        # stream still uses (record_stream below) out of the copy stream's reach.
        with torch.cuda.stream(self.copy_stream):
            dev = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        self.events[slot] = event
        compute.wait_stream(self.copy_stream)
        dev.record_stream(compute)  # allocated on the copy stream, used on the compute one
        return dev.view(tdtype).reshape(arr.shape)


def get_backend(name: str = "auto") -> Backend:
    """Return the backend called ``name``.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"numpy"``, ``"cupy"``, ``"torch"``, ``"torch:cpu"``, ``"torch:cuda"``,
        ``"torch:cuda:<index>"``, or for tests ``"array_api_strict[:<device>]"``. ``"auto"``
        picks CuPy when a CUDA device is usable, else PyTorch on CUDA, else NumPy.

    Raises
    ------
    UsageError
        For a name that is not a backend (exit code 2).
    BackendError
        When the named backend cannot be used here (exit code 4).
    """
    key = name.strip().lower()
    if key == "numpy":
        return _numpy_backend()
    if key == "cupy":
        return _cupy_backend()
    m = _TORCH_NAME.match(key)
    if m:
        if m.group(2) and m.group(1) != "cuda":
            raise UsageError(f"unknown backend {name!r}: only torch:cuda takes a device index")
        return _torch_backend(m.group(1), m.group(2))
    if key == "array_api_strict" or key.startswith("array_api_strict:"):
        return _strict_backend(name.split(":", 1)[1] if ":" in name else None)
    if key == "auto":
        if cupy_available():
            return _cupy_backend()
        # Importing PyTorch costs ~1 s: only when it is installed and a CUDA driver is loaded.
        if (_cuda_driver_present() and importlib.util.find_spec("torch") is not None
                and torch_cuda_available()):
            return _torch_backend("cuda", None)
        return _numpy_backend()
    raise UsageError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
