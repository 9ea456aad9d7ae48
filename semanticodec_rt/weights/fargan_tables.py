"""FARGAN's weights from the C tables of the opus 1.5 source (``dnn/fargan_data.c``) to tensors.

Opus ships its models as C arrays.  FARGAN's layers come in two storages (see ``dnn/nnet.h``,
``dnn/vec.h``; the arithmetic, not the code, is what is reproduced here):

* float layers (``*_weights_float``): a column-major ``[in, out]`` table, so the dense
  ``[out, in]`` weight is its transpose;
* int8 layers (``*_weights_int8`` + per-row ``*_scale``): the matrix is stored in 8 x 4 blocks
  (for each group of 8 output rows, the input columns 4 at a time, row-major inside a block).
  The C product quantises the input to ``q = round(127 x)`` and computes
  ``scale * (W @ q) + bias``, so the equivalent dense float weight is ``127 * scale * W``.
  ``*_subias`` is ``bias - 127 * scale * rowsum(W)`` (the unsigned-input trick of the x86
  kernels): checked against that, and kept for the C-arithmetic mode (its int16 pair sums can
  saturate, and then only the subias form gives the C result).

:func:`read_c_tables` parses the arrays; :func:`fargan_tensors` turns them into the tensors of
:class:`~semanticodec_rt.decoder.synthesis.fargan.FARGAN` (names ``<layer>.weight`` for float
layers, ``<layer>.weight_int8`` + ``<layer>.scale`` for int8 ones, ``<layer>.bias``).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from ..decoder.synthesis.fargan import FARGAN_LAYERS

_ARRAY = re.compile(r"static const (float|opus_int8|int) (\w+)\[(\d+)\] = \{(.*?)\};", re.S)


class TableError(ValueError):
    """The C source does not hold the tables FARGAN needs, in the sizes it needs."""


def read_c_tables(source: str) -> dict[str, np.ndarray]:
    """Every ``static const float|opus_int8|int NAME[N] = {...};`` of a C file, by name."""
    arrays: dict[str, np.ndarray] = {}
    for kind, name, n, body in _ARRAY.findall(source):
        values = [v for v in body.replace("\n", "").split(",") if v.strip()]
        if len(values) != int(n):
            raise TableError(f"{name}: {len(values)} values, declared {n}")
        dtype = {"float": np.float32, "opus_int8": np.int8, "int": np.int32}[kind]
        arrays[name] = np.array([float(v) for v in values], dtype=np.float64).astype(dtype)
    return arrays


def _int8_dense(blocked: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """8 x 4 blocked storage -> ``[out, in]`` int8."""
    if n_out % 8 or n_in % 4 or blocked.size != n_out * n_in:
        raise TableError(f"int8 table of {blocked.size} values is not {n_out} x {n_in} in 8 x 4 blocks")
    return blocked.reshape(n_out // 8, n_in // 4, 8, 4).transpose(0, 2, 1, 3).reshape(n_out, n_in)


def fargan_tensors(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The C tables -> FARGAN's tensors (int8 layers stay int8 with their float row scales)."""
    out: dict[str, torch.Tensor] = {}
    for name, n_in, n_out, has_bias in FARGAN_LAYERS:
        if f"{name}_weights_float" in arrays:
            w = arrays[f"{name}_weights_float"]
            if w.size != n_in * n_out:
                raise TableError(f"{name}: {w.size} float weights, expected {n_in} x {n_out}")
            out[f"{name}.weight"] = torch.from_numpy(w.reshape(n_in, n_out).T.copy())
        elif f"{name}_weights_int8" in arrays:
            w = _int8_dense(arrays[f"{name}_weights_int8"], n_out, n_in)
            scale = arrays[f"{name}_scale"].astype(np.float64)
            bias = arrays.get(f"{name}_bias", np.zeros(n_out, np.float32)).astype(np.float64)
            subias = arrays[f"{name}_subias"].astype(np.float64)
            # The unsigned-input bias must be the float bias minus 127 * scale * rowsum: a check
            # that the block layout and the scale convention above are the C code's.
            expect = bias - 127.0 * scale * w.astype(np.float64).sum(1)
            if not np.allclose(subias, expect, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(expect).max()))):
                raise TableError(f"{name}: subias does not match bias - 127 * scale * rowsum(W)")
            out[f"{name}.weight_int8"] = torch.from_numpy(w.copy())
            out[f"{name}.scale"] = torch.from_numpy(arrays[f"{name}_scale"].copy())
            out[f"{name}.subias"] = torch.from_numpy(arrays[f"{name}_subias"].copy())
        else:
            raise TableError(f"{name}: no weights table in the source")
        if has_bias:
            if f"{name}_bias" not in arrays:
                raise TableError(f"{name}: no bias table in the source")
            out[f"{name}.bias"] = torch.from_numpy(arrays[f"{name}_bias"].copy())
    return out
