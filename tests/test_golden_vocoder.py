"""HiFi-GAN vs the golden vectors of the published generator (weight norm removed, reduced
width 64): the full 1024-frame waveform and every per-stage tensor of the short input."""

from __future__ import annotations

import pytest
import torch
from conftest import GOLDEN_DIR, assert_close, atol, golden, golden_config, state_dict_from

from semanticodec_rt.decoder.synthesis.hifigan import HiFiGAN

pytestmark = pytest.mark.golden


@pytest.fixture(scope="module")
def vocoder_case():
    arrays, meta = golden("vocoder")
    voc = HiFiGAN(golden_config(100).vocoder).eval()
    voc.load_state_dict(state_dict_from(arrays), strict=True)
    return voc, arrays, meta


def test_waveform(vocoder_case):
    voc, arrays, meta = vocoder_case
    with torch.no_grad():
        wav = voc(torch.from_numpy(arrays["in/mel_bft"]))
    assert wav.shape[-1] == 160 * arrays["in/mel_bft"].shape[-1] + 32
    assert_close(wav, arrays["out/waveform"], atol(meta, "out/waveform"), "waveform")


@pytest.fixture(scope="module")
def short_stages(vocoder_case):
    """Per-stage tensors of the short input, named as in the golden file (forward hooks)."""
    voc, arrays, _ = vocoder_case
    got: dict[str, torch.Tensor] = {}

    def keep(name, what):
        def fn(_module, inputs, output):
            got[name] = (inputs[0] if what == "in" else output).detach().clone()

        return fn

    handles = [voc.conv_pre.register_forward_hook(keep("out/short/conv_pre", "out"))]
    for i, up in enumerate(voc.ups):
        handles.append(up.register_forward_hook(keep(f"out/short/ups{i}_input_after_lrelu", "in")))
        handles.append(up.register_forward_hook(keep(f"out/short/ups{i}_output", "out")))
    handles.append(voc.conv_post.register_forward_hook(keep("out/short/conv_post_input_after_lrelu", "in")))
    handles.append(voc.conv_post.register_forward_hook(keep("out/short/conv_post", "out")))
    try:
        with torch.no_grad():
            got["out/short/waveform"] = voc(torch.from_numpy(arrays["in/mel_short_bft"]))
    finally:
        for h in handles:
            h.remove()
    return got


def _short_keys() -> list[str]:
    if GOLDEN_DIR is None:
        return ["out/short/waveform"]
    return [k for k in golden("vocoder")[0] if k.startswith("out/short/")]


@pytest.mark.parametrize("key", _short_keys())
def test_short_stage(vocoder_case, short_stages, key):
    _, arrays, meta = vocoder_case
    assert_close(short_stages[key], arrays[key], atol(meta, key), key)
