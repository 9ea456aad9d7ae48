"""Packet-loss concealment on token ids: what the decoder gets for frames that never came.

Two strategies (``--plc``):

* ``repeat`` -- a missing frame takes the ids of the last frame before it (the last received
  one, or the last concealed one, so a gap holds one sound).  At the stream start, before any
  frame arrived, it takes the next received frame of its unit, or failing that is padded.
* ``pad`` -- a missing frame is marked "no token": the decoder sets its features to -1, the
  value windows are filled with before the stream start (see
  :meth:`~semanticodec_rt.windowing.unit_stream.RTStreamingDecoder.push`), so the model treats the gap as
  it treats the time before the stream began.

Ids are discrete VQ indices, so there is nothing to interpolate between two of them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PLC_MODES", "Concealer"]

PLC_MODES = ("repeat", "pad")


class Concealer:
    """Fill the gaps of consecutive units, keeping the last ids across calls (``repeat``).

    Args:
        mode: ``"repeat"`` or ``"pad"``.
    """

    def __init__(self, mode: str):
        if mode not in PLC_MODES:
            raise ValueError(f"PLC mode must be one of {', '.join(PLC_MODES)}, got {mode!r}")
        self.mode = mode
        self._last: np.ndarray | None = None  # [2] ids of the last frame handed out

    def apply(self, ids: np.ndarray, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conceal one stretch of frames.

        Args:
            ids: ``[n, 2]`` int64; rows where ``missing`` is set are ignored.
            missing: ``[n]`` bool.
        Returns:
            ``(ids, pad)``: ``[n, 2]`` ids with every row in range, and ``[n]`` bool of the rows
            the decoder must read as "no token".
        """
        ids = np.array(ids, dtype=np.int64)
        missing = np.asarray(missing, dtype=bool)
        pad = np.zeros(len(ids), dtype=bool)
        if self.mode == "pad":
            ids[missing] = 0  # any in-range id: the decoder masks these rows
            pad = missing.copy()
        elif missing.any():
            # index of the last present row at or before each row (-1: none in this stretch)
            idx = np.where(~missing, np.arange(len(ids)), -1)
            np.maximum.accumulate(idx, out=idx)
            held = idx >= 0
            ids[missing & held] = ids[idx[missing & held]]
            lead = ~held  # missing rows before the first present one of the stretch
            if self._last is not None:
                ids[lead] = self._last
            elif (~missing).any():
                ids[lead] = ids[int(np.argmax(~missing))]
            else:
                ids[lead], pad[lead] = 0, True
        if len(ids) and not pad[-1]:
            self._last = ids[-1].copy()
        return ids, pad
