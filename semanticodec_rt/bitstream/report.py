"""What ``semanticodec-rt info`` prints about a ``.scrt`` file, as a dict (no model needed)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from .container import ScrtReader


def scrt_report(path: str | os.PathLike) -> dict:
    """What ``info`` prints, as a dict (the ``--json`` object).  Reads and checks the whole file.

    Byte accounting: ``file_bytes = payload_bytes + overhead_bytes``, where ``payload_bytes`` are
    the packed ids as stored (padding bits of a record's last byte included) and
    ``overhead_bytes = header_bytes + framing_bytes`` (framing: per chunk or packet, and the end
    record).  ``n_packets`` counts the stream's packets (``frames_per_packet`` frames each, END
    included: what a link sends); ``n_chunks`` the records of frames in the file (a version 1
    file stores each packet as its own record).
    """
    path = Path(path)
    with ScrtReader(path) as reader:
        for _ in reader:
            pass
    info = dataclasses.replace(reader.info, n_frames=reader.end.first_frame,
                               n_samples=reader.end.n_samples)
    size = path.stat().st_size
    payload = sum(c.payload_bytes for c in reader.chunks)
    duration = info.n_samples / info.sample_rate
    return {
        "file": str(path),
        "format_version": reader.format_version,
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
        "n_packets": len(reader.packets),
        "n_chunks": len(reader.chunks),
        "file_bytes": size,
        "payload_bytes": payload,
        "header_bytes": reader.header_bytes,
        "framing_bytes": size - payload - reader.header_bytes,
        "overhead_bytes": size - payload,
        "file_bps": size * 8 / duration if duration > 0 else None,
    }
