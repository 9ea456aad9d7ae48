"""Training state without pickles (lab/train/safe_state.py): exact round trips of the states the
trainers keep, refusal of anything else, and no code run from a crafted run folder."""

from __future__ import annotations

import json
import math

import pytest
import torch

from semanticodec_rt.lab.train.safe_state import StateFileError, flatten, load_state, save_state, unflatten

pytestmark = pytest.mark.train


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return (isinstance(b, dict) and list(a) == list(b) and all(type(k) is type(kb) for k, kb in zip(a, b))
                and all(_equal(a[k], b[k]) for k in a))
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def _optimizer_state():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GRU(4, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.8, 0.95))
    net[0](torch.randn(5, 3)).sum().backward()
    opt.step()
    return net, opt


def test_round_trip_of_what_trainers_keep(tmp_path):
    net, opt = _optimizer_state()
    state = {
        "step": 12,
        "optimizers": {"g": opt.state_dict()},
        "scalers": {"g": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 3}},
        "ema": {"decay": 0.999, "updates": 7},
        "extra": {"centroids": {8192: torch.randn(4, 3), 4096: torch.randn(2, 3)},
                  "prev": net.state_dict(), "round": 1, "none": None, "flag": True, "nan": float("nan"),
                  "inf": -math.inf, "shape": (3, 4), "names": ["a", "b"], "bf16": torch.ones(2, dtype=torch.bfloat16)},
    }
    save_state(state, tmp_path / "s")
    back = load_state(tmp_path / "s")
    assert _equal(state, back)
    # the optimiser loads it and continues exactly as the original
    net2, opt2 = _optimizer_state()
    opt2.load_state_dict(back["optimizers"]["g"])
    for o, n in ((opt, net), (opt2, net2)):
        o.zero_grad()
        n[0](torch.ones(2, 3)).sum().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(net.parameters(), net2.parameters()))


def test_unknown_types_fail_when_saving(tmp_path):
    for bad in ({"x": object()}, {"x": {1.5j: 1}}, {(1, 2): 3}, {"x": set()}):
        with pytest.raises(TypeError):
            save_state(bad, tmp_path / "bad")
    assert not list(tmp_path.iterdir())


def test_damaged_or_crafted_state_is_refused(tmp_path):
    save_state({"a": torch.zeros(2)}, tmp_path / "s")
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"d": [["a", {"t": "s.99"}]]}))
    with pytest.raises(StateFileError, match="does not hold"):
        load_state(tmp_path / "s")
    j.write_text(json.dumps({"x": "__import__('os').system('touch pwned')"}))
    with pytest.raises(StateFileError, match="unknown state node"):
        load_state(tmp_path / "s")
    (tmp_path / "s.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(StateFileError):
        load_state(tmp_path / "s")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(StateFileError):
        unflatten({"t": "k", "v": 1}, {})


def test_pickled_checkpoints_are_not_loaded(tmp_path):
    """A run folder from the old format (or a crafted one) holds a .pt next to the weights: it is
    never unpickled; the trainer refuses to resume from it."""
    from semanticodec_rt.lab.train.loop import RunDirError, checkpoints

    ckpt = tmp_path / "stage" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "step-0000004.safetensors").write_bytes(b"")
    (ckpt / "step-0000004.pt").write_bytes(b"crafted pickle")
    with pytest.raises(RunDirError, match="pickled"):
        checkpoints(tmp_path / "stage")
    skeleton, tensors = flatten({"step": 4})
    assert tensors == {} and skeleton == {"d": [["step", {"v": 4}]]}
