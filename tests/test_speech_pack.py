"""A speech run packed to float16 and unpacked resumes: the files, the checks, the refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from semanticodec_rt.lab.train.speech_pack import PACK_INDEX, pack, unpack


def _run(tmp_path):
    run = tmp_path / "run"
    (run / "codec").mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    save_file({"w": torch.randn(64, 32, generator=g), "ids": torch.arange(5)}, str(run / "model.safetensors"),
              metadata={"config": "{}"})
    save_file({"opt.0.exp_avg": torch.randn(64, generator=g), "opt.0.step": torch.tensor(21500.0)},
              str(run / "codec" / "state.safetensors"))
    (run / "codec" / "state.json").write_text(json.dumps({"step": 21500}))
    (run / "recipe.json").write_text("{}")
    return run


def test_pack_halves_the_floats_and_unpack_restores_a_run(tmp_path):
    run = _run(tmp_path)
    index = pack(run, tmp_path / "pack")
    assert set(index["files"]) == {"model.safetensors", "recipe.json", "codec/state.safetensors",
                                   "codec/state.json"}
    packed = load_file(str(tmp_path / "pack" / "model.safetensors"))
    assert packed["w"].dtype == torch.float16 and packed["ids"].dtype == torch.int64
    assert load_file(str(tmp_path / "pack/codec/state.safetensors"))["opt.0.step"].item() == 21500.0
    back = tmp_path / "back"
    unpack(tmp_path / "pack", back)
    a, b = load_file(str(run / "model.safetensors")), load_file(str(back / "model.safetensors"))
    assert b["w"].dtype == torch.float32 and torch.allclose(a["w"], b["w"], rtol=1e-3, atol=1e-4)
    assert torch.equal(a["ids"], b["ids"])
    assert json.loads((back / "codec" / "state.json").read_text())["step"] == 21500


def test_unpack_refuses_damage_escape_and_an_existing_model(tmp_path):
    run = _run(tmp_path)
    pack(run, tmp_path / "pack")
    with pytest.raises(ValueError, match="already holds a model"):
        unpack(tmp_path / "pack", run)
    (tmp_path / "pack" / "recipe.json").write_text('{"changed": 1}')
    with pytest.raises(ValueError, match="does not match"):
        unpack(tmp_path / "pack", tmp_path / "x")
    idx = json.loads((tmp_path / "pack" / PACK_INDEX).read_text())
    idx["files"] = {"../evil.json": "0"}
    (tmp_path / "pack" / PACK_INDEX).write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="not a path inside"):
        unpack(tmp_path / "pack", tmp_path / "y")
    with pytest.raises(FileNotFoundError):
        unpack(tmp_path, tmp_path / "z")
