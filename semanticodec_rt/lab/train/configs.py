"""Training configurations: which model is trained and the hyper-parameters of every stage.

A :class:`TrainConfig` names the model (rt family, token rate, vocab sizes) and holds one
settings object per stage.  Named configs live in :data:`CONFIGS`; ``smoke`` is sized for CI
(seconds per stage on a 2-core CPU), ``rt-small`` is the real run.  Single values can be
overridden from the command line with ``--set STAGE.FIELD=VALUE``.

Batch sizes are *global* (summed over data-parallel processes); every process draws the same
global batch for a step and keeps its own share, so a run with N processes and one with a single
process see the same data.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ...config import CodecConfig, rt_config


@dataclass(frozen=True)
class StageSettings:
    """What every stage has.

    Attributes:
        steps: optimisation steps of the stage.
        batch: global batch, in items (crops or windows, see the stage).
        lr: peak learning rate (AdamW), reached after ``warmup`` steps, then cosine to 10 %.
        crop_seconds: audio per item where the stage takes crops of a fixed length.
        ckpt_every: steps between checkpoints (one is also written at exit).
        log_every: steps between log lines.
        ema_decay: decay of the weight EMA (0 disables it); exported weights are the EMA.
    """

    steps: int = 1000
    batch: int = 16
    lr: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    betas: tuple[float, float] = (0.9, 0.99)
    crop_seconds: float = 1.0
    ckpt_every: int = 500
    log_every: int = 10
    ema_decay: float = 0.999


@dataclass(frozen=True)
class MAESettings(StageSettings):
    """Masked-autoencoder pre-training of the semantic ViT (items: ViT windows)."""

    mask_ratio: float = 0.75
    norm_pix_loss: bool = True
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)


@dataclass(frozen=True)
class KMeansSettings(StageSettings):
    """Mini-batch k-means on frozen ViT features (items: crops; one update per step).

    ``vocabs`` are the codebook sizes fitted side by side from the same features; ``init_crops``
    crops seed the centroids (random distinct features); centroids unused for ``dead_after``
    steps are re-seeded from the batch features farthest from their centroid.
    """

    vocabs: tuple[int, ...] = (8192,)
    init_crops: int = 256
    dead_after: int = 200
    stats_crops: int = 256
    ema_decay: float = 0.0
    crop_seconds: float = 2.56


@dataclass(frozen=True)
class VAESettings(StageSettings):
    """Mel VAE (items: mel crops of ``crop_seconds``); L1 + KL, optional patch-GAN term."""

    kl_weight: float = 1e-6
    adversarial_weight: float = 0.0
    adversarial_start: int = 0
    crop_seconds: float = 1.28


@dataclass(frozen=True)
class VocoderSettings(StageSettings):
    """HiFi-GAN (items: audio segments); mel L1 x ``mel_weight`` + feature matching + LSGAN.

    ``disc_width`` scales the channel counts of both discriminators (1.0 = the HiFi-GAN paper).
    """

    mel_weight: float = 45.0
    adversarial_start: int = 0
    feature_weight: float = 2.0
    disc_width: float = 1.0
    crop_seconds: float = 0.5
    betas: tuple[float, float] = (0.8, 0.99)
    lr_decay: float = 0.999  # per 1000 steps after warm-up, on top of the cosine


@dataclass(frozen=True)
class LDMSettings(StageSettings):
    """Latent diffusion UNet + acoustic LSTM/VQ jointly (items: crops; every unit of a crop is a
    decoder window).  ``cond_drop`` replaces the context by the unconditional one (guidance)."""

    cond_drop: float = 0.1
    commitment_weight: float = 1.0
    vq_decay: float = 0.99
    dead_code_threshold: float = 0.5
    crop_seconds: float = 2.56
    scale_batches: int = 8


@dataclass(frozen=True)
class DistillSettings(StageSettings):
    """Progressive distillation of a trained codec's decoder (items: crops; each decoder window of
    a crop is one example).  Not part of the teacher pipeline: ``train distill --teacher SPEC``.

    ``rounds`` are sampler step counts: the teacher samples in ``rounds[0]`` (with two-branch
    guidance of scale ``guidance``), the first student in ``rounds[1]`` with guidance folded in
    (one branch), each later student learns from the previous one.  Each count must divide the
    one before it.  ``steps`` are split equally over the rounds; every round restarts the
    learning-rate warm-up and cosine.  ``teacher``: ``RUN``, ``official:DIR[:RATE[:VOCAB]]`` or a
    checkpoint with ``vae`` (its run's ``vae/final.safetensors``).
    """

    teacher: str = ""
    vae: str = ""
    rounds: tuple[int, ...] = (64, 16, 4, 2, 1)
    guidance: float = 2.0
    crop_seconds: float = 2.56
    ema_decay: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """One training recipe: the model and every stage's settings."""

    name: str
    family: str = "rt-small"
    token_rate: int = 100
    semantic_vocab: int = 8192
    acoustic_codebook: int | None = None  # None: the preset's (8192)
    seed: int = 0
    #: probability of drawing a crop from each class (speech, music, sfx)
    class_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)
    mae: MAESettings = field(default_factory=MAESettings)
    kmeans: KMeansSettings = field(default_factory=KMeansSettings)
    vae: VAESettings = field(default_factory=VAESettings)
    vocoder: VocoderSettings = field(default_factory=VocoderSettings)
    ldm: LDMSettings = field(default_factory=LDMSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)

    def model_config(self) -> CodecConfig:
        """The :class:`CodecConfig` of the model this recipe trains."""
        cfg = rt_config(self.family, self.token_rate, self.semantic_vocab)
        if self.acoustic_codebook is not None:
            cfg = dataclasses.replace(
                cfg,
                name=f"{cfg.name}-a{self.acoustic_codebook}",
                acoustic=dataclasses.replace(cfg.acoustic, codebook_size=self.acoustic_codebook),
            )
        return cfg

    def stage(self, name: str) -> StageSettings:
        if name not in STAGE_FIELDS:
            raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_FIELDS)}")
        return getattr(self, name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


#: the teacher pipeline, in order; ``distill`` comes after it, on a finished teacher (``--teacher``)
STAGES = ("mae", "kmeans", "vae", "vocoder", "ldm")
STAGE_FIELDS = (*STAGES, "distill")


def _smoke() -> TrainConfig:
    """rt-tiny with small codebooks and batches: every stage runs in seconds on a CPU."""
    common = dict(steps=20, batch=4, warmup=2, ckpt_every=10, log_every=5, ema_decay=0.9)
    return TrainConfig(
        name="smoke",
        family="rt-tiny",
        semantic_vocab=32,
        acoustic_codebook=32,
        mae=MAESettings(**common, lr=1e-3),
        kmeans=KMeansSettings(**{**common, "ema_decay": 0.0}, vocabs=(32, 16), init_crops=8,
                              dead_after=5, stats_crops=8, crop_seconds=1.28),
        vae=VAESettings(**common, lr=1e-3, crop_seconds=0.64),
        vocoder=VocoderSettings(**common, lr=1e-3, crop_seconds=0.2, disc_width=0.125),
        ldm=LDMSettings(**common, lr=1e-3, crop_seconds=1.28, scale_batches=2),
        distill=DistillSettings(**{**common, "ema_decay": 0.0}, lr=1e-3, crop_seconds=0.64, rounds=(4, 2, 1)),
    )


def _rt_small() -> TrainConfig:
    """The rt-small teacher (future default model), sized for CPU time slices (one core): a
    resumed run may raise ``steps`` (see :data:`..loop.RESUMABLE_CHANGES`), e.g. on a GPU.  The
    vocoder trains on the mel loss alone until ``vocoder.adversarial_start``."""
    return TrainConfig(
        name="rt-small",
        family="rt-small",
        mae=MAESettings(steps=3000, batch=64, lr=5e-4, warmup=200, ckpt_every=250, log_every=25),
        kmeans=KMeansSettings(steps=500, batch=32, vocabs=(8192, 4096, 2048), init_crops=512,
                              ckpt_every=100, log_every=10),
        vae=VAESettings(steps=3000, batch=8, lr=3e-4, warmup=200, crop_seconds=0.64, ckpt_every=250,
                        log_every=25),
        vocoder=VocoderSettings(steps=6000, batch=8, lr=3e-4, warmup=200, crop_seconds=0.32,
                                ckpt_every=250, log_every=25, disc_width=0.5, adversarial_start=6000),
        ldm=LDMSettings(steps=6000, batch=8, lr=2e-4, warmup=200, ckpt_every=250, log_every=25),
        distill=DistillSettings(steps=2000, batch=4, lr=5e-5, warmup=20, ckpt_every=100, log_every=10),
    )


def _rt_tiny() -> TrainConfig:
    base = _rt_small()
    return dataclasses.replace(base, name="rt-tiny", family="rt-tiny", semantic_vocab=4096,
                               kmeans=dataclasses.replace(base.kmeans, vocabs=(4096, 1024)))


CONFIGS = {"smoke": _smoke, "rt-small": _rt_small, "rt-tiny": _rt_tiny}


def get_train_config(name: str) -> TrainConfig:
    try:
        return CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown training config {name!r}; known: {', '.join(CONFIGS)}") from None


def _parse_value(text: str, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, tuple):
        parts = [p for p in text.replace(",", " ").split() if p]
        kind = type(current[0]) if current else float
        return tuple(kind(p) for p in parts)
    if current is None:
        return int(text)
    return type(current)(text)


def apply_overrides(cfg: TrainConfig, items: list[str]) -> TrainConfig:
    """``["ldm.lr=1e-4", "seed=3", "kmeans.vocabs=1024,512"]`` -> a new config.

    Raises ValueError naming the bad item (unknown field, unparsable value).
    """
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        stage, dot, fname = key.strip().rpartition(".")
        try:
            if dot:
                settings = cfg.stage(stage)
                if fname not in {f.name for f in dataclasses.fields(settings)}:
                    raise ValueError(f"{stage} has no setting {fname!r}")
                new = dataclasses.replace(settings, **{fname: _parse_value(value, getattr(settings, fname))})
                cfg = dataclasses.replace(cfg, **{stage: new})
            else:
                if fname not in {f.name for f in dataclasses.fields(cfg)} or fname in STAGE_FIELDS:
                    raise ValueError(f"no top-level setting {fname!r}")
                cfg = dataclasses.replace(cfg, **{fname: _parse_value(value, getattr(cfg, fname))})
        except (TypeError, ValueError) as e:
            raise ValueError(f"bad override {item!r}: {e}") from None
    return cfg


def from_dict(d: dict) -> TrainConfig:
    """Inverse of :meth:`TrainConfig.to_dict` (used when resuming from a run folder)."""
    kinds = {"mae": MAESettings, "kmeans": KMeansSettings, "vae": VAESettings,
             "vocoder": VocoderSettings, "ldm": LDMSettings, "distill": DistillSettings}

    def tupled(v):
        return tuple(tupled(x) for x in v) if isinstance(v, list) else v

    top = {k: tupled(v) for k, v in d.items() if k not in kinds}
    stages = {k: kinds[k](**{f: tupled(v) for f, v in d[k].items()}) for k in kinds if k in d}
    return TrainConfig(**top, **stages)
