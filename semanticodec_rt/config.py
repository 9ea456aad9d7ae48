"""Frozen configuration dataclasses and the presets of the published SemantiCodec.

Every size of every module lives here; modules read only the sub-config they need, and only
``build`` functions read a whole :class:`CodecConfig`.  The 12 official presets
(token rate 100/50/25 x semantic vocab 4096/8192/16384/32768) reproduce the published
architecture (arXiv 2405.00233, reference code ``haoheliu/SemantiCodec-inference``).

Units: sample rates in Hz, durations in seconds, ``*_frames`` in 10 ms fbank frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

SAMPLE_RATE = 16000
TOKEN_RATES = (100, 50, 25)
SEMANTIC_VOCAB_SIZES = (4096, 8192, 16384, 32768)


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi-compatible log-mel fbank of the semantic encoder (torchaudio ``compliance.kaldi``)."""

    num_mel_bins: int = 128
    frame_length: int = 400  # samples (25 ms)
    frame_shift: int = 160  # samples (10 ms)
    preemphasis: float = 0.97
    low_freq: float = 20.0
    high_freq: float = 8000.0
    norm_mean: float = -4.2677393  # dataset statistics baked into the published model
    norm_std: float = 4.5689974  # the published code divides by 2 * std


@dataclass(frozen=True)
class ViTConfig:
    """AudioMAE-style ViT over the ``[window_frames, 128]`` fbank image, 16x16 patches."""

    img_frames: int = 1024  # fbank frames per encoder window (10.24 s)
    img_bins: int = 128
    patch: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    average_last: int = 3  # output = mean of final-norm(x) after the last 3 blocks
    # MAE decoder: unused at inference, present in encoder.ckpt, trained by the `mae` stage.
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16

    @property
    def grid_t(self) -> int:
        """Time patches per window (64 official; one column = 160 ms)."""
        return self.img_frames // self.patch

    @property
    def grid_f(self) -> int:
        """Frequency patches (8 official)."""
        return self.img_bins // self.patch


@dataclass(frozen=True)
class AcousticConfig:
    """Acoustic residual branch: LSTM over [feature || centroid] + bias-free linear + EMA VQ."""

    lstm_layers: int = 4
    bidirectional: bool = True
    codebook_size: int = 8192  # 13 bits


@dataclass(frozen=True)
class UNetConfig:
    """Latent-diffusion UNet (openaimodel layout with spatial transformers)."""

    in_channels: int = 8
    out_channels: int = 8
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 3, 5)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (8, 4, 2)
    num_head_channels: int = 32
    transformer_depth: int = 1
    extra_sa_layer: bool = True  # a self-only SpatialTransformer before each cross-attention one


@dataclass(frozen=True)
class VAEConfig:
    """Mel VAE (AutoencoderKL): latent [z_channels, T/4, mel_bins/4]."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 8
    embed_dim: int = 8
    in_channels: int = 1
    out_ch: int = 1
    mel_bins: int = 64
    double_z: bool = True


@dataclass(frozen=True)
class VocoderConfig:
    """HiFi-GAN generator (resblock type 1) from 64-bin log-mel at hop 160."""

    num_mels: int = 64
    upsample_initial_channel: int = 1024
    upsample_rates: tuple[int, ...] = (5, 4, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 4, 4)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))


@dataclass(frozen=True)
class DiffusionConfig:
    """v-parameterised DDPM schedule of the latent diffusion decoder."""

    timesteps: int = 1000
    linear_start: float = 0.0015
    linear_end: float = 0.0195
    latent_channels: int = 8
    latent_t: int = 256  # latent frames per decoder window
    latent_f: int = 16


@dataclass(frozen=True)
class SamplerConfig:
    """Default sampling parameters (the reference: 50 DDIM steps, eta 1, guidance 2)."""

    steps: int = 50
    eta: float = 1.0
    cfg_scale: float = 2.0


@dataclass(frozen=True)
class CodecConfig:
    """Everything needed to build a codec.  Derived sizes are properties, never stored twice."""

    name: str
    token_rate: int
    semantic_vocab_size: int
    sample_rate: int = SAMPLE_RATE
    window_frames: int = 1024  # fbank frames per 10.24 s window
    window_overlap_ratio: float = 0.0625  # decoder windows overlap 0.64 s
    pe_dim: int = 192  # sinusoidal position channels appended to the conditioning
    pe_len: int = 512
    fbank: FbankConfig = field(default_factory=FbankConfig)
    vit: ViTConfig = field(default_factory=ViTConfig)
    acoustic: AcousticConfig = field(default_factory=AcousticConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    vocoder: VocoderConfig = field(default_factory=VocoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)

    def __post_init__(self) -> None:
        if self.token_rate not in TOKEN_RATES:
            raise ValueError(f"token_rate must be one of {TOKEN_RATES}, got {self.token_rate}")
        if self.semantic_vocab_size < 2:
            raise ValueError(f"semantic_vocab_size must be >= 2, got {self.semantic_vocab_size}")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def stack_factor(self) -> int:
        """K = 100 / token_rate: patches concatenated into one token (1, 2 or 4)."""
        return 100 // self.token_rate

    @property
    def feature_dim(self) -> int:
        """F: width of one semantic token feature (ViT dim x K)."""
        return self.vit.dim * self.stack_factor

    @property
    def tokens_per_window(self) -> int:
        """T_w: token positions per 10.24 s window (512 / 256 / 128)."""
        return self.vit.grid_t * self.vit.grid_f // self.stack_factor

    @property
    def context_dim(self) -> int:
        """UNet cross-attention context width: [acoustic F || semantic F || PE]."""
        return 2 * self.feature_dim + self.pe_dim

    @property
    def lstm_hidden(self) -> int:
        return 2 * self.feature_dim

    @property
    def window_samples(self) -> int:
        """Samples per encoder window (163840 = 10.24 s)."""
        return self.window_frames * self.fbank.frame_shift

    @property
    def hop_samples(self) -> int:
        return self.fbank.frame_shift

    # -- identity ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CodecConfig":
        """Inverse of :meth:`to_dict` (tuples restored from JSON lists)."""
        sub = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs = {}
        for k, v in d.items():
            if k not in sub:
                raise ValueError(f"unknown config key {k!r}")
            if isinstance(v, dict):
                sub_cls = _SUBCONFIGS[k]
                kwargs[k] = sub_cls(**{kk: _tupled(vv) for kk, vv in v.items()})
            else:
                kwargs[k] = v
        return cls(**kwargs)

    def sha(self) -> str:
        """Short stable hash of the config (names the model in bitstreams and checkpoints)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


_SUBCONFIGS = {
    "fbank": FbankConfig,
    "vit": ViTConfig,
    "acoustic": AcousticConfig,
    "unet": UNetConfig,
    "vae": VAEConfig,
    "vocoder": VocoderConfig,
    "diffusion": DiffusionConfig,
    "sampler": SamplerConfig,
}


def _tupled(v):
    if isinstance(v, list):
        return tuple(_tupled(x) for x in v)
    return v


# LSTM depth of the published acoustic encoder per token rate.
_OFFICIAL_LSTM_LAYERS = {100: 4, 50: 3, 25: 2}


def official_config(token_rate: int = 100, semantic_vocab_size: int = 32768) -> CodecConfig:
    """The published architecture for one (token rate, semantic vocab) setting."""
    if token_rate not in TOKEN_RATES:
        raise ValueError(f"token_rate must be one of {TOKEN_RATES}, got {token_rate}")
    if semantic_vocab_size not in SEMANTIC_VOCAB_SIZES:
        raise ValueError(
            f"semantic_vocab_size must be one of {SEMANTIC_VOCAB_SIZES}, got {semantic_vocab_size}"
        )
    return CodecConfig(
        name=f"official-r{token_rate}-v{semantic_vocab_size}",
        token_rate=token_rate,
        semantic_vocab_size=semantic_vocab_size,
        acoustic=AcousticConfig(lstm_layers=_OFFICIAL_LSTM_LAYERS[token_rate]),
    )


PRESETS: dict[str, CodecConfig] = {
    f"official-r{r}-v{v}": official_config(r, v) for r in TOKEN_RATES for v in SEMANTIC_VOCAB_SIZES
}


def get_config(name: str) -> CodecConfig:
    """Look up a preset by name; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown config {name!r}; known: {', '.join(sorted(PRESETS))}") from None
