"""Per-stage wall-clock accounting (cheap enough to stay on in every call)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class StageTimes(dict):
    """``{stage name: seconds}``, accumulated over calls until :meth:`clear`."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start
