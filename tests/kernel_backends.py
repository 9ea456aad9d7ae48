"""The (backend, device) cases shared by the kernel tests, and which of them can run here.

A missing compiled module or CUDA device skips the test, with the reason; ``SCRT_REQUIRE_EXT=1``
turns a missing compiled module into a failure instead.
"""

from __future__ import annotations

import os

import pytest
import torch

from semanticodec_rt.ops import _backend

REQUIRE_EXT = os.environ.get("SCRT_REQUIRE_EXT") == "1"
U32 = 2.0**-24  # unit roundoff of float32

# (backend, device) pairs; ref also runs on the GPU so CUDA results can be compared there.
CASES = [("ref", "cpu"), ("cpp", "cpu"), ("cuda", "cuda"), ("ref", "cuda")]
CASE_IDS = [f"{b}-{d}" for b, d in CASES]


def runnable(backend: str, device: str) -> torch.device:
    """The device to test ``backend`` on; skips (or fails under SCRT_REQUIRE_EXT=1) otherwise."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is False")
    if backend != "ref":
        err = _backend.import_error(backend)
        if err is not None:
            message = f"backend {backend!r} not importable: {err}"
            if REQUIRE_EXT:
                pytest.fail(message)
            pytest.skip(message)
    return torch.device(device)


@pytest.fixture(params=CASES, ids=CASE_IDS)
def case(request) -> tuple[str, torch.device]:
    """A (backend, device) pair from CASES that runs here (import it into the test module)."""
    backend, device = request.param
    return backend, runnable(backend, device)
