"""The eval listening page: one self-contained HTML file whose players and images load in a real
browser (headless Chromium), and its data: Ogg Vorbis that decodes back to the audio it holds."""

from __future__ import annotations

import base64
import io
import re
import subprocess

import numpy as np
import pytest
import soundfile as sf
from conftest import require_program

from semanticodec_rt.lab.eval.page import audio_data_uri, spectrogram_png, write_page

SR = 16000


def _tone(f0: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) * np.minimum(1, 20 * t)).astype(np.float32)


def test_audio_data_uri_decodes_to_the_audio():
    x = _tone(440)
    uri = audio_data_uri(x)
    assert uri.startswith("data:audio/ogg;base64,")
    y, sr = sf.read(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])), dtype="float32")
    assert sr == SR and abs(len(y) - len(x)) < 64
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.99  # lossy, but the same sound
    assert len(uri) < 0.25 * 4 / 3 * 2 * len(x)  # well under a quarter of the 16-bit WAV


def _page(tmp_path, n_clips: int = 2):
    listen, rows = {}, []
    for k in range(n_clips):
        x = _tone(200 + 100 * k)
        dec = {"ours": (0.5 * x, 1.3), "codec2-1400": (0.2 * x, 1.4)}
        rel = f"test/{'speech' if k == 0 else 'music'}/clip{k}.flac"
        listen[rel] = {"cls": "speech" if k == 0 else "music", "original": x, "decodes": dec,
                       "spectrogram": spectrogram_png(rel, x, dec)}
        rows += [{"clip": rel, "codec": c, "stoi": 0.5 + 0.1 * k} for c in dec]
    summary = [{"codec": c, "cls": cls, "n_clips": 1, "kbps": kb, "metrics": {"stoi": {"mean": 0.6}}}
               for c, kb in (("ours", 1.3), ("codec2-1400", 1.4)) for cls in ("speech", "music", "all")]
    return write_page(tmp_path / "listen.html", summary, {"ref": "set", "n_clips": n_clips}, rows, ["stoi"],
                      listen, chart_png=spectrogram_png("chart", _tone(100), {}))


def test_page_is_self_contained(tmp_path):
    text = _page(tmp_path).read_text()
    assert text.count("<audio ") == 6 and text.count("<img ") == 3
    assert not re.search(r'src="(?!data:)', text)  # nothing outside the file
    assert "speech" in text and "music" in text and "0.600" in text


def test_page_loads_in_headless_chromium(tmp_path):
    chromium = require_program("chromium", "chromium")
    page = _page(tmp_path)
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
              f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    check = re.search(r'data-check="([^"]*)"', dom.stdout)
    assert check, dom.stderr[-2000:]
    assert check.group(1) == "images 3/3 audio 6/6 failed 0"
    shot = tmp_path / "listen.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
