"""The computations of the real-time unit grid (:class:`.units.UnitWindowing`), shared by the
offline path, the streaming classes and training so that all run the same arithmetic.

Time grid (``cfg.stream`` set):

* a *column* is 16 fbank frames = 160 ms = 2560 samples; frame i reads samples
  ``[160 i, 160 i + 400)``, so column c's last frame reaches 240 samples past the column;
* a *unit* is 1 column (2 at token rate 25, whose 2x2 patch groups span two columns) and
  carries ``cfg.tokens_per_unit`` token positions;
* the ViT of unit u sees columns ``[uU - context, uU + U + lookahead)``; columns before the
  start or past the end of the stream are the normalised fbank of digital silence;
* the decoder window of unit u holds the token features of the ``decoder_columns`` columns
  ending with the unit (positions before the stream start are filled with -1, the model's
  "no token" value) and is sampled with noise derived from (seed, u) only.

The global-mean subtraction of the published front end is skipped: a stream has no global
mean, and Kaldi's per-frame DC removal makes it a no-op up to rounding.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..config import CodecConfig
from ..decoder.conditioning import fill_window
from ..decoder.diffusion.noise import window_noise
from ..encoder.fbank import FLOAT32_EPS, kaldi_fbank, normalize
from ..encoder.grouping import patches_to_tokens


def silence_row(cfg: CodecConfig) -> float:
    """Normalised fbank value of digital silence (log floor): about -1.2776."""
    # The same float32 ops as a silent frame in kaldi_fbank: log of the clamped floor.
    floor = torch.tensor(FLOAT32_EPS, dtype=torch.float32).log()
    return float(normalize(floor, cfg.fbank))


def frames_from_samples(cfg: CodecConfig, samples: torch.Tensor) -> torch.Tensor:
    """``[B, n]`` samples starting on a frame boundary -> normalised ``[B, frames, 128]``."""
    return normalize(kaldi_fbank(samples, cfg.fbank, subtract_mean=False), cfg.fbank)


def units_for_samples(cfg: CodecConfig, n_samples: int) -> int:
    """Units an ``n_samples`` stream yields: whole columns, rounded up to whole units."""
    cols = -(-n_samples // cfg.column_samples)
    return -(-cols // cfg.unit_columns)


def tail_samples(cfg: CodecConfig) -> int:
    """Samples the last frame of a column reaches past it (240)."""
    return cfg.fbank.frame_length - cfg.fbank.frame_shift


def pad_columns(cfg: CodecConfig, columns: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """``[B, C, 16, 128]`` -> ``[B, before + C + after, 16, 128]`` with silence columns."""
    b, _, f, m = columns.shape
    sil = silence_row(cfg)
    parts = [columns.new_full((b, before, f, m), sil), columns, columns.new_full((b, after, f, m), sil)]
    return torch.cat(parts, dim=1)


def semantic_features(encoder, cfg: CodecConfig, windows: torch.Tensor) -> torch.Tensor:
    """ViT over unit windows ``[N, W_cols, 16, 128]`` -> unit token features ``[N, T_u, F]``."""
    st = cfg.stream
    n, w_cols, f, m = windows.shape
    emb = encoder.audiomae(windows.reshape(n, w_cols * f, m))  # [N, 1 + W_cols*8, D]
    grid_f = cfg.vit.grid_f
    first = 1 + st.context_columns * grid_f
    patches = emb[:, first : first + cfg.unit_columns * grid_f]  # the unit's own columns
    return patches_to_tokens(patches, cfg.stack_factor, cfg.unit_columns, grid_f)


def acoustic_step(encoder, rep: torch.Tensor, state):
    """Semantic ids, LSTM (carrying ``state``), projection and VQ for ``[B, T, F]`` features.

    Returns ``(tokens [B, T, 2] int64, new_state)``; ``state`` is the LSTM ``(h, c)`` or None.
    """
    sem = encoder.semantic_quantizer.quantize(rep)
    centroid = encoder.semantic_quantizer.dequantize(sem).to(rep.dtype)
    hidden, state = encoder.encoder(torch.cat([rep, centroid], dim=-1), state)
    ac = encoder.quantizer.quantize(encoder.encoder_output_linear(hidden))
    return torch.stack([sem, ac], dim=-1), state


def encode_units_offline(encoder, cfg: CodecConfig, samples: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Whole signals ``[B, n]`` (16 kHz) -> tokens ``[B, units * T_u, 2]``, all units batched."""
    tokens, _ = acoustic_step(encoder, unit_representation(encoder, cfg, samples, chunk), None)
    return tokens


def unit_representation(encoder, cfg: CodecConfig, samples: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Whole signals ``[B, n]`` -> the ViT token features of every unit ``[B, units * T_u, F]``
    (each unit seen through its own context/lookahead window, as the stream sees it)."""
    st = cfg.stream
    b, n = samples.shape
    units = units_for_samples(cfg, n)
    cols = units * cfg.unit_columns
    padded = torch.nn.functional.pad(samples, (0, cols * cfg.column_samples + tail_samples(cfg) - n))
    frames = frames_from_samples(cfg, padded)  # [B, 16 cols, 128]
    columns = frames.reshape(b, cols, cfg.vit.patch, -1)
    columns = pad_columns(cfg, columns, st.context_columns, st.lookahead_columns)
    w_cols = st.context_columns + cfg.unit_columns + st.lookahead_columns
    # windows[b, u] = columns[b, uU : uU + w_cols]
    windows = columns.unfold(1, w_cols, cfg.unit_columns).permute(0, 1, 4, 2, 3)  # [B, U, w, 16, 128]
    flat = windows.reshape(b * units, w_cols, cfg.vit.patch, -1)
    feats = torch.cat([semantic_features(encoder, cfg, flat[i : i + chunk]) for i in range(0, flat.shape[0], chunk)])
    return feats.reshape(b, units * cfg.tokens_per_unit, -1)


# -- decoder -------------------------------------------------------------------------------------
def decoder_units(cfg: CodecConfig) -> int:
    """Units per decoder window (the emitted unit and its past)."""
    return cfg.stream.decoder_columns // cfg.unit_columns


def window_samples(cfg: CodecConfig) -> int:
    """Audio samples a decoder window covers (without the vocoder's 32 extra)."""
    return cfg.stream.decoder_columns * cfg.column_samples


def crossfade_samples(cfg: CodecConfig) -> int:
    return int(round(cfg.stream.crossfade_ms * cfg.sample_rate / 1000))


def decoder_window_tokens(cfg: CodecConfig) -> int:
    """Token positions per decoder window: the decoder columns' positions."""
    return cfg.stream.decoder_columns * cfg.vit.grid_f // cfg.stack_factor


def unit_samples(cfg: CodecConfig) -> int:
    """Samples per unit (2560 = 160 ms; 5120 at token rate 25)."""
    return cfg.unit_columns * cfg.column_samples


def unit_window(features: torch.Tensor, cfg: CodecConfig) -> torch.Tensor:
    """``[B, T <= Tw, 2F]`` features ending with the unit -> ``[B, Tw, 2F]``, -1 on the left."""
    tw = decoder_window_tokens(cfg)
    if features.shape[1] == tw:
        return features
    # fill_window pads on the right: flip, fill, flip back.
    return fill_window(features.flip(1), tw).flip(1)


def unit_windows(features: torch.Tensor, cfg: CodecConfig, units: int, offset: int = 0) -> torch.Tensor:
    """``[B, T, 2F]`` features -> ``[B, units, Tw, 2F]``: the decoder window of each of ``units``
    consecutive units, the first ending at position ``offset + T_u`` (windows reach back
    ``decoder_units - 1`` units; -1 filled before position 0, a stream start)."""
    tu = cfg.tokens_per_unit
    span = decoder_units(cfg) * tu
    ends = [offset + (i + 1) * tu for i in range(units)]
    return torch.stack([unit_window(features[:, max(0, end - span) : end], cfg) for end in ends], 1)


def sample_windows(decoder, cfg: CodecConfig, windows: torch.Tensor, unit_index: list[int], *, seed: int,
                   steps: int, eta: float, cfg_scale: float, separate_guidance: bool = False) -> torch.Tensor:
    """Decode ``[N, Tw, 2F]`` unit windows -> ``[N, 1, window_samples]`` audio.

    ``unit_index[i]`` is the stream unit of window i; its noise depends on (seed, unit) only.
    """
    n_steps = len(decoder.ddim(steps, eta))
    shape = (1, *decoder.latent_shape)
    noise = [window_noise(seed, u, shape, n_steps) for u in unit_index]
    x_T = torch.cat([z[0] for z in noise]).to(windows.device)

    def step_noise(i: int) -> torch.Tensor:
        return torch.cat([z[1 + i] for z in noise]).to(windows.device)

    wave = decoder.generate(
        windows, x_T, step_noise, steps=steps, eta=eta, cfg_scale=cfg_scale, separate_guidance=separate_guidance
    )
    return wave[..., : window_samples(cfg)]


def fades(n: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear crossfade ``(fade_out, fade_in)`` of n samples, summing to exactly 1."""
    fade_in = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return (1.0 - fade_in).to(dtype), fade_in.to(dtype)


def emit_segment(cfg: CodecConfig, wave: torch.Tensor, prev_tail: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix one window into the output.

    Args:
        wave: ``[B, 1, window_samples]`` window of unit u, covering stream samples
            ``[(u+1) US - Ws, (u+1) US)``.
        prev_tail: the previous window's last ``xf`` samples (stream ``[uUS - xf, uUS)``), or
            None for the first unit.
    Returns:
        ``(segment, tail)``: the samples ``[uUS - xf, (u+1)US - xf)`` (the first ``xf`` of them
        crossfaded; for the first unit the segment starts at sample 0) and the new tail.
    """
    xf = crossfade_samples(cfg)
    ws = window_samples(cfg)
    us = unit_samples(cfg)
    seg = wave[..., ws - us - xf : ws - xf]
    tail = wave[..., ws - xf :]
    if prev_tail is None:
        return seg[..., xf:], tail
    fade_out, fade_in = fades(xf, wave.dtype)
    head = prev_tail * fade_out + seg[..., :xf] * fade_in
    return torch.cat([head, seg[..., xf:]], dim=-1), tail


def decode_units_offline(parts, tokens: torch.Tensor, *, seed: int, steps: int, eta: float,
                         cfg_scale: float, windows_per_batch: int = 8,
                         separate_guidance: bool = False, progress: bool = False) -> torch.Tensor:
    """Whole token sequences ``[B, L, 2]`` (L a multiple of T_u) -> audio ``[B, 1, units * US]``.

    ``parts``: the codec's ``cfg``, ``encoder`` (token features) and ``decoder`` (sampling).
    """
    cfg = parts.cfg
    tu = cfg.tokens_per_unit
    b, length, _ = tokens.shape
    if length % tu:
        raise ValueError(f"{cfg.name} decodes whole units of {tu} positions; got {length} positions")
    feats = parts.encoder.tokens_to_feature(tokens.to(parts.decoder.scale_factor.device))
    units = length // tu
    out, tail = [], None
    with tqdm(total=units, unit="unit", desc="decode", disable=not progress) as bar:
        for first in range(0, units, windows_per_batch):
            group = list(range(first, min(units, first + windows_per_batch)))
            segs, tail = decode_unit_group(
                parts, feats, first * tu, group, tail,
                seed=seed, steps=steps, eta=eta, cfg_scale=cfg_scale, separate_guidance=separate_guidance,
            )
            out.extend(segs)
            bar.update(len(group))
    if tail is not None:
        out.append(tail)
    return torch.cat(out, dim=-1) if out else torch.zeros(b, 1, 0)


def decode_unit_group(parts, feats: torch.Tensor, offset: int, units: list[int], tail: torch.Tensor | None,
                      **sampling) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Decode consecutive units in one UNet batch and mix them into the output.

    Args:
        parts: the codec's ``cfg`` and ``decoder``.
        feats: ``[B, T, 2F]`` features; unit ``units[i]`` ends at position
            ``offset + (i + 1) T_u`` and its window reaches back up to ``decoder_units - 1``
            units before that (fewer at the stream start: -1 filled).
        units: stream indices of the units (they name the noise).
        tail: the crossfade tail of the unit before ``units[0]`` (None at the stream start).
        sampling: ``seed, steps, eta, cfg_scale[, separate_guidance]`` for :func:`sample_windows`.
    Returns:
        ``(segments, tail)``: one ``[B, 1, n]`` segment per unit and the new tail.
    """
    cfg = parts.cfg
    b = feats.shape[0]
    # window-major batch: [unit0 items..., unit1 items...]
    windows = unit_windows(feats, cfg, len(units), offset).transpose(0, 1).flatten(0, 1)
    waves = sample_windows(parts.decoder, cfg, windows, [u for u in units for _ in range(b)], **sampling)
    waves = waves.float().cpu()
    segments = []
    for i in range(len(units)):
        seg, tail = emit_segment(cfg, waves[i * b : (i + 1) * b], tail)
        segments.append(seg)
    return segments, tail
