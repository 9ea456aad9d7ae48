"""State-dict keys, shapes and dtypes of the models built from config vs the official manifests."""

import json

import pytest
import torch
from conftest import OFFICIAL_MANIFEST_DIR, require_golden

from semanticodec_rt.config import official_config
from semanticodec_rt.weights.official import (
    DECODER_IGNORED_PREFIXES, ENCODER_IGNORED_PREFIXES, decoder_spec, encoder_spec,
)

pytestmark = pytest.mark.manifest

_DTYPES = {"float32": torch.float32, "bool": torch.bool, "int32": torch.int32, "int64": torch.int64}


def _manifest(kind: str, rate: int) -> dict:
    require_golden()
    entries = json.loads((OFFICIAL_MANIFEST_DIR / f"{kind}_tokenrate{rate}.json").read_text())["state_dict"]
    return {e["key"]: (tuple(e["shape"]), _DTYPES[e["dtype"]]) for e in entries}


def _compare(ours: dict, ref: dict) -> None:
    missing = sorted(set(ref) - set(ours))
    extra = sorted(set(ours) - set(ref))
    assert not missing and not extra, f"missing {missing[:10]}, unexpected {extra[:10]}"
    bad = [(k, ours[k], ref[k]) for k in ref if ours[k] != ref[k]]
    assert not bad, f"{len(bad)} keys differ in shape/dtype, e.g. {bad[:5]}"


@pytest.mark.parametrize("rate", [100, 50, 25])
def test_encoder_keys_match_manifest(rate):
    ref = _manifest("encoder", rate)
    _compare(encoder_spec(official_config(rate, 32768)), ref)
    assert len(ref) == {100: 291, 50: 283, 25: 275}[rate]


@pytest.mark.parametrize("rate", [100, 50, 25])
def test_decoder_keys_match_manifest(rate):
    ref = _manifest("decoder", rate)
    _compare(decoder_spec(official_config(rate, 32768)), ref)
    assert len(ref) == 2622


@pytest.mark.parametrize("rate", [100, 25])
def test_inference_modules_hold_exactly_the_used_groups(rate):
    """What inference keeps = manifest minus the documented ignored groups."""
    from semanticodec_rt.decoder.latent_diffusion import LatentDiffusionDecoder
    from semanticodec_rt.encoder.codec_encoder import SemantiCodecEncoder

    cfg = official_config(rate, 4096)
    with torch.device("meta"):
        enc = set(SemantiCodecEncoder(cfg, with_mae_decoder=False).state_dict())
        dec = set(LatentDiffusionDecoder(cfg, with_vae_encoder=False).state_dict())
    assert enc == {k for k in _manifest("encoder", rate) if not k.startswith(ENCODER_IGNORED_PREFIXES)}
    assert dec == {k for k in _manifest("decoder", rate) if not k.startswith(DECODER_IGNORED_PREFIXES)}
