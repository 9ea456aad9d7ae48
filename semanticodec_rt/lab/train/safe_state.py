"""Training state without pickles: nested containers of tensors and plain values, stored as one
safetensors file (the tensors) and one JSON file (everything else, with the tensors' places).

A resumed run reads optimiser moments, scaler and EMA counters and the stages' own state from
here.  ``torch.load`` of a pickle would run whatever code a crafted run folder holds; these two
formats hold data only, so loading a run folder from anywhere is safe.

What can be stored: tensors, ``dict`` (keys ``str``, ``int``, ``float``, ``bool`` or ``None``,
their types kept), ``list``, ``tuple``, ``int``, ``float`` (NaN and infinities included),
``bool``, ``str`` and ``None``.  Anything else raises ``TypeError`` when saving, so a new kind
of state fails at once rather than on the resume.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

_PLAIN = (int, float, bool, str, type(None))


class StateFileError(ValueError):
    """A state file pair that is missing, unreadable or inconsistent."""


def flatten(obj, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "s"):
    """``obj`` -> ``(skeleton, tensors)``: a JSON-able skeleton and the tensors it names."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"t": key}, tensors
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, _PLAIN):
                raise TypeError(f"state dict key {k!r} of type {type(k).__name__} cannot be stored")
            items.append([k, flatten(v, tensors, prefix)[0]])
        return {"d": items}, tensors
    if isinstance(obj, (list, tuple)):
        tag = "l" if isinstance(obj, list) else "u"
        return {tag: [flatten(v, tensors, prefix)[0] for v in obj]}, tensors
    if isinstance(obj, _PLAIN):
        return {"v": obj}, tensors
    raise TypeError(f"training state of type {type(obj).__name__} cannot be stored without pickling")


def unflatten(skeleton, tensors: dict[str, torch.Tensor], device: str | torch.device = "cpu"):
    """Inverse of :func:`flatten`."""
    if not isinstance(skeleton, dict) or len(skeleton) != 1:
        raise StateFileError(f"malformed state node {str(skeleton)[:80]!r}")
    (tag, body), = skeleton.items()
    if tag == "t":
        if body not in tensors:
            raise StateFileError(f"state names tensor {body!r}, which the file does not hold")
        return tensors[body].to(device)
    if tag == "d":
        return {k: unflatten(v, tensors, device) for k, v in body}
    if tag == "l":
        return [unflatten(v, tensors, device) for v in body]
    if tag == "u":
        return tuple(unflatten(v, tensors, device) for v in body)
    if tag == "v":
        return body
    raise StateFileError(f"unknown state node tag {tag!r}")


def save_state(obj, base: Path) -> None:
    """Write ``base.safetensors`` and ``base.json`` (each through a temporary file and a rename;
    the JSON last, so a JSON on disk always has its tensors)."""
    from safetensors.torch import save_file

    skeleton, tensors = flatten(obj)
    base = Path(base)
    tmp_t = base.with_name(f".{base.name}.{os.getpid()}.safetensors.tmp")
    tmp_j = base.with_name(f".{base.name}.{os.getpid()}.json.tmp")
    save_file(tensors, str(tmp_t))
    tmp_j.write_text(json.dumps(skeleton))
    os.replace(tmp_t, base.with_name(base.name + ".safetensors"))
    os.replace(tmp_j, base.with_name(base.name + ".json"))


def load_state(base: Path, device: str | torch.device = "cpu"):
    """Read what :func:`save_state` wrote (data only: nothing is unpickled or evaluated)."""
    from safetensors.torch import load_file

    base = Path(base)
    j, t = base.with_name(base.name + ".json"), base.with_name(base.name + ".safetensors")
    try:
        skeleton = json.loads(j.read_text())
        tensors = load_file(str(t))
    except Exception as e:  # OSError, bad JSON, or safetensors' own error types for a damaged file
        raise StateFileError(f"{base}: unreadable training state ({e})") from None
    return unflatten(skeleton, tensors, device)
