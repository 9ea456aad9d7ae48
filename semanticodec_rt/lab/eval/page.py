"""The listening page of an evaluation run: ``listen.html``, one self-contained file.

People judge codecs by ear.  The page holds, per class, the summary table and the
bitrate-vs-quality chart, and per listening clip (the first few of each class) the reference and
every codec as audio players next to their metrics, with the clip's log-mel spectrograms.
Everything is inside the one file -- audio as Ogg Vorbis data URIs (~10x smaller than WAV),
figures as PNG data URIs -- so it can be mailed or archived alone and opens offline.

A small script checks on load that every image decoded and every player read its audio
(``HTMLMediaElement.readyState`` >= HAVE_METADATA); it writes the counts into ``<body
data-check="...">`` and the title, which a headless browser test reads back.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from . import metrics as _metrics
from .report import _fmt

PAGE_NAME = "listen.html"
LISTEN_PER_CLASS = 3  # clips per class with players on the page
_VORBIS_QUALITY = 0.6  # libsndfile's VBR quality in [0, 1]: transparent enough to judge a ~1 kbps codec


def audio_data_uri(y: np.ndarray, rate: int = _metrics.SAMPLE_RATE) -> str:
    """``[n]`` float audio -> ``data:audio/ogg;base64,...`` (Ogg Vorbis, clipped to [-1, 1])."""
    import soundfile as sf

    buf = io.BytesIO()
    y = np.clip(np.nan_to_num(np.asarray(y, np.float32)), -1.0, 1.0)
    if len(y) == 0:
        y = np.zeros(1, np.float32)
    sf.write(buf, y, rate, format="OGG", subtype="VORBIS", compression_level=1.0 - _VORBIS_QUALITY)
    return "data:audio/ogg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(draw) -> bytes:
    """PNG bytes of a figure that ``draw(file_object)`` saves."""
    buf = io.BytesIO()
    draw(buf)
    return buf.getvalue()


def _metric_head(metric_names: list[str]) -> str:
    cells = []
    for m in metric_names:
        info = _metrics.INFO[m]
        cells.append(f"<th>{html.escape(info.label)} {'&uarr;' if info.higher_is_better else '&darr;'}</th>")
    return "".join(cells)


def _summary_table(summary: list[dict], cls: str, metric_names: list[str]) -> str:
    rows = []
    for e in (e for e in summary if e["cls"] == cls):
        cells = []
        for m in metric_names:
            v = e["metrics"].get(m) or {}
            cells.append(f"<td>{_fmt(v.get('mean'))}</td>")
        rows.append(f"<tr><td>{html.escape(e['codec'])}</td><td>{e['n_clips']}</td>"
                    f"<td>{_fmt(e['kbps'], 2)}</td>{''.join(cells)}</tr>")
    return (f"<table><tr><th>codec</th><th>clips</th><th>kbit/s</th>{_metric_head(metric_names)}</tr>"
            + "".join(rows) + "</table>")


def _clip_section(k: int, rel: str, clip: dict, rows: list[dict], metric_names: list[str]) -> str:
    """One listening clip: players + per-codec metrics, then its spectrograms."""
    by_codec = {r["codec"]: r for r in rows if r["clip"] == rel}
    lines = [f"<tr><td>reference</td><td><audio controls preload=\"metadata\" "
             f"src=\"{audio_data_uri(clip['original'])}\"></audio></td><td></td>"
             + "<td></td>" * len(metric_names) + "</tr>"]
    for name, (y, kbps) in clip["decodes"].items():
        r = by_codec.get(name, {})
        cells = "".join(f"<td>{_fmt(r.get(m))}</td>" for m in metric_names)
        lines.append(f"<tr><td>{html.escape(name)}</td><td><audio controls preload=\"metadata\" "
                     f"src=\"{audio_data_uri(y)}\"></audio></td><td>{_fmt(kbps, 2)}</td>{cells}</tr>")
    out = [f"<h3 id=\"clip{k}\">{html.escape(rel)}</h3>",
           f"<table><tr><th>codec</th><th>listen</th><th>kbit/s</th>{_metric_head(metric_names)}</tr>"
           + "".join(lines) + "</table>"]
    if clip.get("spectrogram"):
        out.append(f"<img class=\"spec\" alt=\"log-mel spectrograms of {html.escape(rel)}\" "
                   f"src=\"{png_data_uri(clip['spectrogram'])}\">")
    return "\n".join(out)


_CHECK_SCRIPT = """
<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images), players = Array.from(document.querySelectorAll("audio"));
  function report() {
    var badImg = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
    var ready = players.filter(function (a) { return a.readyState >= 1; }).length;
    var failed = players.filter(function (a) { return a.error; }).length;
    var text = "images " + (imgs.length - badImg) + "/" + imgs.length + " audio " + ready + "/" +
               players.length + " failed " + (badImg + failed);
    document.body.setAttribute("data-check", text);
    document.title = "listen: " + text;
    return ready + failed < players.length;
  }
  if (report()) {
    var tries = 0, timer = setInterval(function () { if (!report() || ++tries > 100) clearInterval(timer); }, 50);
    players.forEach(function (a) { a.addEventListener("loadedmetadata", report); a.addEventListener("error", report); });
  }
});
</script>"""

_STYLE = """
<style>
body { font-family: sans-serif; margin: 1.5em; max-width: 75em; }
table { border-collapse: collapse; margin: 0.5em 0 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
td:first-child, th:first-child { text-align: left; }
audio { height: 2em; width: 18em; }
img.spec { max-width: 100%; }
img.chart { max-width: 100%; }
</style>"""


def write_page(path: Path, summary: list[dict], meta: dict, rows: list[dict], metric_names: list[str],
               listen: dict[str, dict], chart_png: bytes | None = None) -> Path:
    """Write the listening page.

    Args:
        path: the ``.html`` file.
        summary: :func:`.report.summarize` entries.  meta: the run metadata (``created``, ``ref``).
        rows: the per-(clip, codec) rows.  metric_names: the metrics to show, in order.
        listen: ``{clip rel: {"cls", "original": [n], "decodes": {codec: (audio [n], kbps)},
            "spectrogram": PNG bytes or None}}``, in page order.
        chart_png: the bitrate-vs-quality chart (PNG bytes), or ``None``.
    """
    classes = list(dict.fromkeys(e["cls"] for e in summary if e["cls"] != "all")) + ["all"]
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>listen: loading</title>", _STYLE, "</head><body data-check=\"loading\">",
             "<h1>Codec evaluation: listening page</h1>",
             f"<p>reference {html.escape(str(meta.get('ref', '')))}, {meta.get('n_clips', '?')} clips, "
             f"created {html.escape(str(meta.get('created', '')))} by semanticodec_rt "
             f"{html.escape(str(meta.get('semanticodec_rt', '')))}. Players hold Ogg Vorbis copies "
             f"of the decodes (quality {_VORBIS_QUALITY}); scores were computed on the decodes themselves.</p>"]
    if chart_png:
        parts.append(f"<img class=\"chart\" alt=\"bitrate vs quality\" src=\"{png_data_uri(chart_png)}\">")
    for cls in classes:
        parts.append(f"<h2>{html.escape(cls)}</h2>")
        parts.append(_summary_table(summary, cls, metric_names))
        for k, (rel, clip) in enumerate(listen.items()):
            if clip["cls"] == cls:
                parts.append(_clip_section(k, rel, clip, rows, metric_names))
    parts.append(_CHECK_SCRIPT)
    parts.append("</body></html>")
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def spectrogram_png(title: str, original: np.ndarray, decodes: dict) -> bytes | None:
    """The report's spectrogram figure as PNG bytes (``None`` without matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    from .report import spectrogram_figure

    return _figure_png(lambda f: spectrogram_figure(f, title, original, decodes))
