"""What ``semanticodec-rt info`` prints about a ``.scrt`` file, as a dict (no model needed)."""

from __future__ import annotations

import os
from pathlib import Path

from .bitpack import packed_size
from .container import read_scrt
from .packet import PacketKind


def scrt_report(path: str | os.PathLike) -> dict:
    """What ``info`` prints, as a dict (the ``--json`` object).  Reads and checks the whole file."""
    path = Path(path)
    info, _, packets = read_scrt(path)
    size = path.stat().st_size
    payload = sum(packed_size(p.n_frames, info.frame_bits) for p in packets if p.kind is PacketKind.TOKENS)
    duration = info.n_samples / info.sample_rate
    return {
        "file": str(path),
        "model": info.model,
        "config": info.config,
        "version": info.version,
        "sample_rate": info.sample_rate,
        "n_samples": info.n_samples,
        "duration_s": duration,
        "token_rate": info.token_rate,
        "frames_per_s": info.frames_per_s,
        "semantic_vocab": info.semantic_vocab,
        "acoustic_vocab": info.acoustic_vocab,
        "semantic_bits": info.semantic_bits,
        "acoustic_bits": info.acoustic_bits,
        "payload_bps": info.payload_bps,
        "n_frames": info.n_frames,
        "frames_per_packet": info.frames_per_packet,
        "n_packets": len(packets),
        "file_bytes": size,
        "payload_bytes": payload,
        "overhead_bytes": size - payload,
        "file_bps": size * 8 / duration if duration > 0 else None,
    }
