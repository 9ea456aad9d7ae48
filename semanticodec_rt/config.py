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


def stack_factor(token_rate: int) -> int:
    """K = 100 / token_rate (1, 2 or 4): AudioMAE patches stacked into one token position."""
    if token_rate not in TOKEN_RATES:
        raise ValueError(f"token_rate must be one of {TOKEN_RATES}, got {token_rate!r}")
    return 100 // token_rate


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
    hidden: int | None = None  # LSTM width; None = 2F (the published rule)


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
    """Default sampling parameters (the reference: 50 DDIM steps, eta 1, guidance 2).

    ``spacing`` picks the timestep grid: ``uniform`` is the reference's ``{0, c, 2c, ...} + 1``;
    ``trailing`` is ``floor(i T / S) - 1`` for i = 1..S, ending on a clean latent, whose grids
    nest (the S/2 grid is every other point of the S grid) -- what a progressively distilled
    student (``train distill``) is trained on, and the only grid it is valid for.
    """

    steps: int = 50
    eta: float = 1.0
    cfg_scale: float = 2.0
    spacing: str = "uniform"

    def __post_init__(self) -> None:
        if self.spacing not in SAMPLER_SPACINGS:
            raise ValueError(f"sampler spacing must be one of {SAMPLER_SPACINGS}, got {self.spacing!r}")


    def resolve(self, steps: int | None = None, cfg_scale: float | None = None,
                eta: float | None = None) -> "SamplerConfig":
        """These defaults with the caller's overrides (``None`` keeps the default): the one place
        where a decode call's sampling options meet the model's."""
        return dataclasses.replace(
            self,
            steps=self.steps if steps is None else int(steps),
            cfg_scale=self.cfg_scale if cfg_scale is None else float(cfg_scale),
            eta=self.eta if eta is None else float(eta),
        )


SAMPLER_SPACINGS = ("uniform", "trailing")


class SamplerError(ValueError):
    """Sampling options a model cannot run (e.g. 0 steps on a diffusion decoder)."""


@dataclass(frozen=True)
class StreamConfig:
    """Windowing of the real-time (streaming-native) presets, in 160 ms patch columns.

    The semantic ViT of token unit u (1 column; 2 at token rate 25) sees ``context_columns``
    past columns, the unit, and ``lookahead_columns`` future ones.  The decoder samples one
    window of ``decoder_columns`` columns per unit (the unit and its past) and emits the unit,
    crossfaded over ``crossfade_ms`` with the previous window.
    """

    context_columns: int = 3
    lookahead_columns: int = 1
    decoder_columns: int = 2
    crossfade_ms: float = 20.0


@dataclass(frozen=True)
class SpeechConfig:
    """The speech route: tokens -> 20 FARGAN features per 10 ms frame -> the FARGAN vocoder.

    One token position is ``unit_frames`` 10 ms frames.  Its semantic id is the nearest
    k-means centroid of a causal ViT feature (``CodecConfig.vit`` sizes, one patch per
    position, attending ``context_units`` past positions per layer); its acoustic id is the
    composite of ``rvq_stages`` residual-VQ indices of ``rvq_bits`` each.  The decoder waits
    for ``lookahead_units`` later positions.
    """

    unit_frames: int = 4  # 40 ms per token position (token rate 25)
    context_units: int = 15
    lookahead_units: int = 1
    xcorr_min_lag: int = 32  # FARGAN's shortest period (500 Hz)
    xcorr_max_lag: int = 256  # one past its longest (62.5 Hz)
    xcorr_window: int = 320  # samples correlated per frame (20 ms)
    enc_channels: int = 256
    code_dim: int = 64
    rvq_stages: int = 4
    rvq_bits: int = 10
    dec_hidden: int = 384
    pitch_bins: int = 192
    flow_hidden: int = 256
    flow_layers: int = 3
    # The general-audio route (music, effects): a regression path to 64-bin log-mel and an
    # iSTFT vocoder, a router that picks a route per position from the tokens, a waveform fade
    # over route_fade_units positions at each switch.
    general_route: bool = False
    router_hidden: int = 64
    route_fade_units: int = 2

    @property
    def xcorr_lags(self) -> int:
        return self.xcorr_max_lag - self.xcorr_min_lag


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
    # None: the published 10.24 s windowing.  Set: a streaming-native rt preset.
    stream: StreamConfig | None = None
    # Set: the speech route (vocoder features and FARGAN instead of latent diffusion).
    speech: SpeechConfig | None = None

    def __post_init__(self) -> None:
        if self.token_rate not in TOKEN_RATES:
            raise ValueError(f"token_rate must be one of {TOKEN_RATES}, got {self.token_rate}")
        if self.semantic_vocab_size < 2:
            raise ValueError(f"semantic_vocab_size must be >= 2, got {self.semantic_vocab_size}")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def stack_factor(self) -> int:
        """K = 100 / token_rate: patches concatenated into one token (1, 2 or 4)."""
        return stack_factor(self.token_rate)

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
        return self.acoustic.hidden if self.acoustic.hidden is not None else 2 * self.feature_dim

    @property
    def column_samples(self) -> int:
        """Samples per 160 ms patch column (2560)."""
        return self.vit.patch * self.fbank.frame_shift

    @property
    def unit_columns(self) -> int:
        """Columns per token unit: 2 at rate 25 (2x2 patch groups), else 1."""
        return 2 if self.stack_factor == 4 else 1

    @property
    def tokens_per_unit(self) -> int:
        """Token positions per unit (8 / 4 / 4 at rates 100 / 50 / 25)."""
        return self.unit_columns * self.vit.grid_f // self.stack_factor

    @property
    def window_samples(self) -> int:
        """Samples per encoder window (163840 = 10.24 s)."""
        return self.window_frames * self.fbank.frame_shift

    # -- identity ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        # Fields added after the first release are written only when they differ from their
        # default, so that every earlier config keeps its sha (checkpoints, bitstream headers).
        for sub, name, default in _LATE_FIELDS:
            if d[sub] is not None and d[sub].get(name) == default:
                del d[sub][name]
        if d["speech"] is None:  # a later top-level section, omitted when unset
            del d["speech"]
        return d

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


#: (sub-config, field, default) added later; omitted from to_dict() at their default
_LATE_FIELDS = (("sampler", "spacing", "uniform"), ("speech", "general_route", False),
                ("speech", "router_hidden", 64), ("speech", "route_fade_units", 2))

_SUBCONFIGS = {
    "fbank": FbankConfig,
    "vit": ViTConfig,
    "acoustic": AcousticConfig,
    "unet": UNetConfig,
    "vae": VAEConfig,
    "vocoder": VocoderConfig,
    "diffusion": DiffusionConfig,
    "sampler": SamplerConfig,
    "stream": StreamConfig,
    "speech": SpeechConfig,
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


# -- real-time presets --------------------------------------------------------------------------
# Same module types, sized for streaming on a 2-core CPU.  Sizes per family; the token rate then
# fixes the ViT window (context + unit + lookahead columns) and the decoder latent length.
_RT_FAMILIES = {
    "rt-small": dict(
        vit=dict(dim=192, depth=6, heads=3, decoder_dim=128, decoder_depth=2, decoder_heads=4, average_last=2),
        acoustic=dict(lstm_layers=2, bidirectional=False, hidden=384),
        # Three levels, cross-attention only at the lowest (x4) resolution, no extra self-attention
        # transformer: a UNet call on the 8 x 16 latent is dominated by per-op overhead on a CPU.
        unet=dict(
            model_channels=32, channel_mult=(1, 2, 4), num_res_blocks=1, num_head_channels=16,
            attention_resolutions=(4,), extra_sa_layer=False,
        ),
        vae=dict(ch=32, ch_mult=(1, 2, 4), num_res_blocks=1),
        vocoder=dict(upsample_initial_channel=96),
        stream=dict(context_columns=3, lookahead_columns=1, crossfade_ms=20.0),
    ),
    "rt-tiny": dict(
        vit=dict(dim=32, depth=2, heads=2, decoder_dim=16, decoder_depth=1, decoder_heads=2, average_last=1),
        acoustic=dict(lstm_layers=1, bidirectional=False, hidden=64),
        unet=dict(
            model_channels=32, channel_mult=(1, 1, 1), num_res_blocks=1, num_head_channels=16,
            attention_resolutions=(4,), extra_sa_layer=False,
        ),
        vae=dict(ch=32, ch_mult=(1, 1, 1), num_res_blocks=1),
        vocoder=dict(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),)),
        stream=dict(context_columns=1, lookahead_columns=1, crossfade_ms=20.0),
    ),
}
RT_FAMILIES = tuple(_RT_FAMILIES)


def rt_config(family: str = "rt-small", token_rate: int = 100, semantic_vocab_size: int = 8192) -> CodecConfig:
    """A streaming-native preset.  ``semantic_vocab_size`` is free (k-means size of our models)."""
    if family not in _RT_FAMILIES:
        raise ValueError(f"unknown rt family {family!r}; known: {', '.join(RT_FAMILIES)}")
    if token_rate not in TOKEN_RATES:
        raise ValueError(f"token_rate must be one of {TOKEN_RATES}, got {token_rate}")
    fam = _RT_FAMILIES[family]
    unit = 2 if token_rate == 25 else 1  # 2x2 patch groups span two columns
    stream = StreamConfig(decoder_columns=2 * unit, **fam["stream"])
    columns = stream.context_columns + unit + stream.lookahead_columns
    frames = columns * ViTConfig.patch
    vit = ViTConfig(img_frames=frames, **fam["vit"])
    return CodecConfig(
        name=f"{family}-r{token_rate}-v{semantic_vocab_size}",
        token_rate=token_rate,
        semantic_vocab_size=semantic_vocab_size,
        window_frames=frames,
        vit=vit,
        acoustic=AcousticConfig(**fam["acoustic"]),
        unet=UNetConfig(**fam["unet"]),
        vae=VAEConfig(**fam["vae"]),
        vocoder=VocoderConfig(**fam["vocoder"]),
        # 16 fbank frames per column, VAE time downsampling x4
        diffusion=DiffusionConfig(latent_t=stream.decoder_columns * ViTConfig.patch // 4),
        sampler=SamplerConfig(steps=4, eta=0.0, cfg_scale=2.0),
        stream=stream,
    )


# -- the speech route ----------------------------------------------------------------------------
def speech_config(family: str = "sp-small", semantic_vocab_size: int = 4096, general: bool = False) -> CodecConfig:
    """The speech route's preset: 25 positions/s of 2 ids (token rate 50 ids/s, the official
    convention), 12 + 40 bits per position = 1300 bit/s.  ``general``: with the general-audio
    route (same tokens and bits; a second regression path and a router in the decoder)."""
    if family != "sp-small":
        raise ValueError(f"unknown speech family {family!r}; known: sp-small")
    sp = SpeechConfig(general_route=general)
    return CodecConfig(
        name=f"{family}-r50-v{semantic_vocab_size}" + ("-g" if general else ""),
        token_rate=50,
        semantic_vocab_size=semantic_vocab_size,
        window_frames=(sp.context_units + 1) * sp.unit_frames,
        vit=ViTConfig(img_frames=(sp.context_units + 1) * sp.unit_frames, dim=192, depth=4, heads=4,
                      decoder_dim=0, decoder_depth=0, decoder_heads=1, average_last=1),
        acoustic=AcousticConfig(lstm_layers=1, bidirectional=False, codebook_size=1 << (sp.rvq_stages * sp.rvq_bits),
                                hidden=sp.enc_channels),
        sampler=SamplerConfig(steps=2, eta=0.0, cfg_scale=1.0, spacing="trailing"),
        speech=sp,
    )


PRESETS: dict[str, CodecConfig] = {
    f"official-r{r}-v{v}": official_config(r, v) for r in TOKEN_RATES for v in SEMANTIC_VOCAB_SIZES
}
PRESETS.update({f"{fam}-r{r}": rt_config(fam, r) for fam in RT_FAMILIES for r in TOKEN_RATES})
PRESETS["sp-small-r50"] = speech_config("sp-small")
PRESETS["sp-small-r50-g"] = speech_config("sp-small", general=True)

