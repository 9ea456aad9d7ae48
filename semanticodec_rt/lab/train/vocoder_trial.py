"""Vocoder trials: candidate general-audio vocoders trained under one fixed CPU budget each.

The general-audio route needs a vocoder that a 2-core CPU can train.  Each candidate here gets
the same data, the same crop length and the same budget of *CPU seconds* (process time, one
thread), and is then judged by copy synthesis (true features in, audio out) in ``eval``:

* ``istft`` -- :class:`~...decoder.synthesis.istft_vocoder.ISTFTVocoder` from scratch,
  multi-resolution STFT + log-mel loss;
* ``hnm`` -- :class:`~...decoder.synthesis.harmonic_noise.HarmonicNoiseVocoder` from scratch,
  the same losses (its phase comes from the DSP source);
* ``hifigan-gan`` -- the previous default's HiFi-GAN (trained 6000 steps on the mel loss
  alone), continued with its GAN phase (multi-period + multi-scale discriminators, LSGAN,
  feature matching; the HiFi-GAN V1 recipe of :mod:`.stages.vocoder`).

Data: a cache of fixed crops of the corpus's train split (:func:`build_cache`), with opus's
pitch features (FARGAN's 18/19) per 10 ms frame for the candidates that read pitch.  A run is
resumable: its state (weights, optimisers, step, CPU seconds spent) is saved every few minutes,
and the learning rate follows a cosine over the CPU budget, so stopping and resuming gives the
same schedule.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...audio.mel import HOP, log_mel
from ...decoder.synthesis.harmonic_noise import HarmonicNoiseVocoder
from ...decoder.synthesis.istft_vocoder import ISTFTVocoder
from .data import CropSource

CANDIDATES = ("istft", "hnm", "hifigan-gan")
#: (n_fft, hop) of the multi-resolution STFT loss, 16 ms to 128 ms windows
STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512))
CACHE_NAME = "crops.npz"
STATE_NAME = "state.pt"
FINAL_NAME = "final.safetensors"
LOG_NAME = "log.jsonl"


# -- data ---------------------------------------------------------------------------------------
def build_cache(corpus: str | Path, out: str | Path, crops: int = 2400, seconds: float = 2.0,
                class_weights=(0.2, 0.5, 0.3), seed: int = 17, progress: bool = True) -> Path:
    """``crops`` crops of ``seconds`` from the train split (speech/music/sfx by ``class_weights``),
    skipping near-silent ones, with opus's pitch features -> ``out/crops.npz``
    (``audio`` int16 ``[N, n]``, ``pitch`` float32 ``[N, n / 160, 2]``, ``cls``)."""
    from tqdm import tqdm

    from ..data import opus_source

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    src = CropSource(corpus, "train", class_weights, seed)
    n = int(round(seconds * 100)) * HOP
    audio, pitch, cls = [], [], []
    step = 0
    with tqdm(total=crops, desc="crops", disable=not progress) as bar:
        while len(audio) < crops:
            b = src.crops(step, 1, n)
            step += 1
            x = b["audio"][0].numpy()
            if b["valid"][0] < n or np.sqrt(np.mean(x**2)) < 3e-3:
                continue  # short or near silent: nothing for a vocoder to learn
            pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
            f = opus_source.fargan_features(pcm)[:, 18:20]
            p = np.zeros((n // HOP, 2), np.float32)
            p[: len(f)] = f[: n // HOP]
            audio.append(pcm)
            pitch.append(p)
            cls.append(b["cls"][0])
            bar.update(1)
    path = out / CACHE_NAME
    np.savez(path, audio=np.stack(audio), pitch=np.stack(pitch), cls=np.array(cls))
    return path


class CropCache:
    """The cache, and a batch per (seed, step): random frame-aligned windows of its crops."""

    def __init__(self, path: str | Path, seed: int = 0) -> None:
        z = np.load(Path(path) / CACHE_NAME if Path(path).is_dir() else path)
        self.audio = torch.from_numpy(z["audio"].astype(np.float32) / 32768.0)
        self.pitch = torch.from_numpy(z["pitch"])
        self.seed = seed

    def batch(self, step: int, count: int, frames: int) -> dict:
        rng = np.random.default_rng([self.seed, step])
        idx = rng.integers(0, len(self.audio), count)
        total = self.pitch.shape[1]
        start = rng.integers(0, total - frames + 1, count)
        audio = torch.stack([self.audio[i, s * HOP : (s + frames) * HOP] for i, s in zip(idx, start)])
        pitch = torch.stack([self.pitch[i, s : s + frames] for i, s in zip(idx, start)])
        g = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        return {"audio": audio, "pitch": pitch, "noise": torch.randn(audio.shape, generator=g)}


# -- losses -------------------------------------------------------------------------------------
def stft_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Multi-resolution STFT loss: per resolution, spectral convergence + mean |log-magnitude
    difference|, averaged over :data:`STFT_RESOLUTIONS`.  ``[B, n]`` each."""
    total = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        w = torch.hann_window(n_fft, device=real.device)
        f = torch.stft(fake, n_fft, hop, window=w, return_complex=True).abs()
        r = torch.stft(real, n_fft, hop, window=w, return_complex=True).abs()
        sc = torch.linalg.norm(r - f) / torch.linalg.norm(r).clamp_min(1e-7)
        mag = (torch.log(f.clamp_min(1e-5)) - torch.log(r.clamp_min(1e-5))).abs().mean()
        total = total + sc + mag
    return total / len(STFT_RESOLUTIONS)


# -- candidates ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrialSettings:
    batch: int = 8
    frames: int = 64  # 0.64 s crops
    lr: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    mel_weight: float = 1.0  # log-mel L1 on top of the STFT loss (istft, hnm)
    gan_mel_weight: float = 45.0  # HiFi-GAN V1
    gan_feature_weight: float = 2.0
    disc_width: float = 0.5  # as rt-small's vocoder stage
    save_every_s: float = 300.0


class Candidate:
    """A generator, its optimisers and one training step."""

    name: str

    def __init__(self, settings: TrialSettings) -> None:
        self.s = settings

    def synthesize(self, mel: torch.Tensor, pitch: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, batch: dict) -> dict:
        raise NotImplementedError

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt}

    def set_lr(self, factor: float) -> None:
        for opt in self.optimizers().values():
            for g in opt.param_groups:
                g["lr"] = self.s.lr * factor


class _SpectralCandidate(Candidate):
    """istft and hnm: the generator alone, STFT + log-mel losses."""

    def __init__(self, settings: TrialSettings, generator: torch.nn.Module) -> None:
        super().__init__(settings)
        self.generator = generator
        self.opt = torch.optim.AdamW(generator.parameters(), settings.lr, betas=settings.betas)

    def train_step(self, batch: dict) -> dict:
        real = batch["audio"]
        mel = log_mel(real)
        fake = self.synthesize(mel, batch["pitch"], batch["noise"])
        spec = stft_loss(fake, real)
        mel_l1 = (log_mel(fake) - mel).abs().mean()
        loss = spec + self.s.mel_weight * mel_l1
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), 10.0)
        self.opt.step()
        return {"loss": loss.item(), "stft": spec.item(), "mel_l1": mel_l1.item()}


class ISTFTCandidate(_SpectralCandidate):
    name = "istft"

    def __init__(self, settings: TrialSettings) -> None:
        super().__init__(settings, ISTFTVocoder())

    def synthesize(self, mel, pitch, noise):
        return self.generator(mel)


class HNMCandidate(_SpectralCandidate):
    name = "hnm"

    def __init__(self, settings: TrialSettings) -> None:
        super().__init__(settings, HarmonicNoiseVocoder())

    def synthesize(self, mel, pitch, noise):
        return self.generator(mel, pitch, noise)


class HiFiGANCandidate(Candidate):
    """The previous default's HiFi-GAN generator, continued with discriminators."""

    name = "hifigan-gan"
    #: where the previous default (int8, rt-small, vocoder trained on the mel loss only) lives
    start_from = Path("/work/runs/old_default.safetensors")

    def __init__(self, settings: TrialSettings, start_from: str | Path | None = None) -> None:
        from ..train.discriminators import HiFiGANDiscriminator

        super().__init__(settings)
        self.generator = _previous_hifigan(Path(start_from or self.start_from))
        self.disc = HiFiGANDiscriminator(width=settings.disc_width)
        lr = settings.lr
        self.opt = torch.optim.AdamW(self.generator.parameters(), lr, betas=settings.betas)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr, betas=settings.betas)

    def modules(self):
        return {"generator": self.generator, "disc": self.disc}

    def optimizers(self):
        return {"generator": self.opt, "disc": self.opt_d}

    def synthesize(self, mel, pitch, noise):
        return self.generator(mel.transpose(1, 2))[:, 0, : mel.shape[1] * HOP]

    def train_step(self, batch: dict) -> dict:
        from .losses import discriminator_loss, feature_loss, generator_loss

        real = batch["audio"]
        mel = log_mel(real)
        fake = self.synthesize(mel, None, None)
        r, _ = self.disc(real[:, None])
        f, _ = self.disc(fake.detach()[:, None])
        d = discriminator_loss(r, f)
        self.opt_d.zero_grad(set_to_none=True)
        d.backward()
        self.opt_d.step()
        _, rf = self.disc(real[:, None])
        f, ff = self.disc(fake[:, None])
        adv, fm = generator_loss(f), feature_loss(rf, ff)
        mel_l1 = (log_mel(fake) - mel).abs().mean()
        loss = self.s.gan_mel_weight * mel_l1 + self.s.gan_feature_weight * fm + adv
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "mel_l1": mel_l1.item(), "adv": adv.item(), "fm": fm.item(),
                "disc": d.item()}


def _previous_hifigan(path: Path) -> torch.nn.Module:
    from ...api import load_model

    codec = load_model(str(path))
    voc = codec.decoder.first_stage_model.vocoder
    voc.train()
    for p in voc.parameters():
        p.requires_grad_(True)
    return voc


def make_candidate(name: str, settings: TrialSettings | None = None) -> Candidate:
    settings = settings or TrialSettings()
    table = {"istft": ISTFTCandidate, "hnm": HNMCandidate, "hifigan-gan": HiFiGANCandidate}
    if name not in table:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}")
    if name == "hifigan-gan":  # the HiFi-GAN V1 recipe's crops; a learning rate for fine-tuning
        settings = TrialSettings(**{**settings.__dict__, "lr": min(settings.lr, 2e-4), "frames": 32})
    return table[name](settings)


# -- the budgeted loop ----------------------------------------------------------------------------
def train(name: str, cache: str | Path, out: str | Path, budget_cpu_s: float,
          settings: TrialSettings | None = None, seed: int = 0, progress: bool = True) -> Path:
    """Train candidate ``name`` until it has used ``budget_cpu_s`` CPU seconds (this process's,
    resumed runs included); writes ``out/final.safetensors`` and returns it."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    cand = make_candidate(name, settings)
    data = CropCache(cache, seed)
    step, spent = 0, 0.0
    state_path = out / STATE_NAME
    if state_path.exists():
        st = torch.load(state_path, weights_only=False)
        for k, m in cand.modules().items():
            m.load_state_dict(st["modules"][k])
        for k, o in cand.optimizers().items():
            o.load_state_dict(st["optimizers"][k])
        step, spent = st["step"], st["cpu_s"]

    def save() -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save({"modules": {k: m.state_dict() for k, m in cand.modules().items()},
                    "optimizers": {k: o.state_dict() for k, o in cand.optimizers().items()},
                    "step": step, "cpu_s": spent, "candidate": name}, tmp)
        tmp.replace(state_path)

    log = open(out / LOG_NAME, "a")
    bar = tqdm(total=round(budget_cpu_s), initial=round(min(spent, budget_cpu_s)), unit="cpu-s",
               desc=name, disable=not progress)
    last_save = spent
    try:
        while spent < budget_cpu_s:
            cand.set_lr(0.5 * (1 + math.cos(math.pi * spent / budget_cpu_s)))
            c0, w0 = time.process_time(), time.perf_counter()
            stats = cand.train_step(data.batch(step, cand.s.batch, cand.s.frames))
            dt = time.process_time() - c0
            spent += dt
            step += 1
            bar.update(round(spent) - bar.n)
            if step % 50 == 0:
                log.write(json.dumps({"step": step, "cpu_s": round(spent, 1),
                                      "wall_step_s": round(time.perf_counter() - w0, 3),
                                      **{k: round(v, 5) for k, v in stats.items()}}) + "\n")
                log.flush()
            if spent - last_save >= cand.s.save_every_s:
                save()
                last_save = spent
    finally:
        bar.close()
        log.close()
    save()
    final = out / FINAL_NAME
    save_file({k: v.detach().contiguous() for k, v in cand.generator.state_dict().items()}, str(final),
              metadata={"candidate": name, "steps": str(step), "cpu_s": f"{spent:.0f}"})
    return final


def load_generator(name: str, final: str | Path) -> Candidate:
    """A candidate with the generator weights of a finished trial, in eval mode."""
    from safetensors.torch import load_file

    cand = make_candidate(name)
    cand.generator.load_state_dict(load_file(str(final)))
    cand.generator.eval()
    return cand
