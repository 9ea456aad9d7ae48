"""Which kernel backend runs an op: lazy import of the compiled modules, and backend selection.

Backends:
    ``ref``   torch reference twins in :mod:`semanticodec_rt.ops.ref`; any device, any float dtype.
    ``cpp``   ``semanticodec_rt._C`` (CPU tensors).
    ``cuda``  ``semanticodec_rt._cuda`` (CUDA tensors).

Selection, strongest first: the op's ``backend=`` argument, :func:`use_backend`, the environment
variable ``SCRT_BACKEND`` (read at every call), then ``auto``: a CUDA tensor goes to ``cuda`` and a
CPU tensor to ``cpp`` when that module is built, otherwise to ``ref``. A backend that is named
explicitly must work: if its module failed to import, a RuntimeError carries the import error;
nothing falls back silently.

Only this package imports the compiled modules.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import torch

BACKENDS = ("ref", "cpp", "cuda")
_MODULE_NAMES = {"cpp": "semanticodec_rt._C", "cuda": "semanticodec_rt._cuda"}

# name -> imported module or the exception its import raised (each import is tried once).
_loaded: dict[str, ModuleType | BaseException] = {}
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar("scrt_backend", default=None)


def _try_import(name: str) -> ModuleType | BaseException:
    if name not in _loaded:
        try:
            _loaded[name] = importlib.import_module(_MODULE_NAMES[name])
        except ImportError as e:  # not built, or built for another Python/platform
            _loaded[name] = e
    return _loaded[name]


def module(name: str) -> ModuleType | None:
    """The compiled module of backend ``name`` ("cpp" or "cuda"), or None if it did not import."""
    m = _try_import(name)
    return m if isinstance(m, ModuleType) else None


def import_error(name: str) -> str | None:
    """Why backend ``name``'s module failed to import (``repr`` of the error), or None."""
    m = _try_import(name)
    return None if isinstance(m, ModuleType) else repr(m)


def load(name: str) -> ModuleType:
    """The compiled module of backend ``name``; RuntimeError naming the import error if missing."""
    m = _try_import(name)
    if not isinstance(m, ModuleType):
        raise RuntimeError(
            f"backend {name!r} is not available: importing {_MODULE_NAMES[name]} failed "
            f"with {m!r}. "
            "Build it with `pip install --no-build-isolation -e .`, or choose another backend."
        )
    return m


def available_backends() -> list[str]:
    """Backends whose code is importable here, in ``BACKENDS`` order (``ref`` is always one).

    ``cuda`` means the CUDA module is built and loads; running it still needs a CUDA device.
    """
    return ["ref"] + [b for b in ("cpp", "cuda") if module(b) is not None]


def build_info() -> dict[str, dict]:
    """What each compiled backend reports about itself (for benchmark headers and bug reports):
    ``cpp``: OpenMP's thread count and the nearest-centroid code path a large lookup takes here
    (``avx512``, ``avx2`` or ``portable``; ``SCRT_NC_PATH`` forces one); ``cuda``: runtime and
    driver versions and the devices seen (with the CUDA error of device discovery, if any).
    Backends not built are left out."""
    info: dict[str, dict] = {}
    cpp = module("cpp")
    if cpp is not None:
        try:
            path = cpp.nearest_centroid_path()
        except ValueError as e:  # SCRT_NC_PATH names an unknown path or one this CPU cannot run
            path = f"error: {e}"
        info["cpp"] = {"openmp_max_threads": cpp.openmp_max_threads(), "nearest_centroid_path": path}
    cuda = module("cuda")
    if cuda is not None:
        count, error, message = cuda.device_status()
        info["cuda"] = {"runtime_version": cuda.runtime_version(), "driver_version": cuda.driver_version(),
                        "device_count": count, "device_error": error, "device_message": message}
    return info


def _check_name(name: str) -> str:
    key = name.strip().lower()
    if key not in ("auto", *BACKENDS):
        raise ValueError(f"unknown backend {name!r}; expected one of auto, {', '.join(BACKENDS)}")
    return key


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Run the ops inside the ``with`` block on backend ``name`` (or "auto").

    Context-local (threads and asyncio tasks each see their own choice); an op's ``backend=``
    argument still wins.
    """
    token = _forced.set(_check_name(name))
    try:
        yield
    finally:
        _forced.reset(token)


def resolve(requested: str | None, device: torch.device) -> str:
    """Backend that runs an op on tensors on ``device``.

    Raises:
        ValueError: unknown name, or a compiled backend named for tensors on the wrong device.
        RuntimeError: a compiled backend was named but its module is not available.
    """
    name = requested if requested is not None else _forced.get()
    if name is None:
        name = os.environ.get("SCRT_BACKEND", "") or "auto"
    name = _check_name(name)
    if name == "auto":
        if device.type == "cuda" and module("cuda") is not None:
            return "cuda"
        if device.type == "cpu" and module("cpp") is not None:
            return "cpp"
        return "ref"
    if name == "ref":
        return name
    load(name)
    wanted = "cpu" if name == "cpp" else "cuda"
    if device.type != wanted:
        raise ValueError(f"backend {name!r} runs on {wanted} tensors, got tensors on {device}")
    return name
