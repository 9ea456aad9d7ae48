"""Report files of an evaluation run (all in the output folder):

* ``clips.csv`` -- one row per (clip, codec): class, split, package, scored seconds, kbps (file
  bytes), payload kbps (our model), alignment lag, coding time, every metric, the ASR's WER on
  the original (``wer_ref``), the transcript's word count and why a metric is empty (empty
  cells are NaN: not computable or n/a);
* ``summary.json`` -- run metadata (model, baselines, pinned ViSQOL mapping, metric settings and
  package versions, alignment) and, per codec and class (and ``all``), clips, hours scored,
  bitrate (total bits / total seconds) and the mean of every metric with its count;
  WER is corpus-level (word errors / transcript words);
* ``summary.md`` -- the same as Markdown tables, the NaN reasons and the figures;
* ``bitrate_quality.png`` -- each codec's mean STOI / PESQ-WB / ViSQOL / log-mel per class
  against its bitrate;
* ``spectrogram_<k>_<class>.png`` -- log-mel spectrograms of the original and of every codec
  for the first clip of up to three classes;
* ``listen.html`` -- the listening page (:mod:`.page`), written by the run after these.

Figures use matplotlib's Agg canvas (no display, no pyplot state); without matplotlib they are
skipped and the reason is recorded.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from . import metrics as _metrics

CSV_NAME, JSON_NAME, MD_NAME = "clips.csv", "summary.json", "summary.md"
CHART_NAME = "bitrate_quality.png"
CHART_METRICS = ("stoi", "pesq_wb", "visqol", "visqol_audio", "logmel")
_CLASS_ORDER = ("speech", "music", "sfx", "other")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _classes(rows: list[dict]) -> list[str]:
    present = {r["cls"] for r in rows}
    return [c for c in _CLASS_ORDER if c in present] + sorted(present - set(_CLASS_ORDER))


def summarize(rows: list[dict], codec_names: list[str], metric_names: list[str]) -> list[dict]:
    """Per codec, per class (then ``all``): clips, hours, kbps, metric means."""
    out = []
    for codec in codec_names:
        for cls in [*_classes(rows), "all"]:
            sel = [r for r in rows if r["codec"] == codec and (cls == "all" or r["cls"] == cls)]
            if not sel:
                continue
            dur = sum(r["dur_s"] for r in sel)
            entry = {"codec": codec, "cls": cls, "n_clips": len(sel), "hours": dur / 3600,
                     "kbps": _weighted(sel, "kbps"), "payload_kbps": _weighted(sel, "payload_kbps"),
                     "metrics": {}}
            for m in metric_names:
                vals = [r[m] for r in sel if _finite(r.get(m))]
                if m == "wer":
                    entry["metrics"][m] = _corpus_wer(sel, "wer")
                    entry["metrics"]["wer_ref"] = _corpus_wer(sel, "wer_ref")
                else:
                    entry["metrics"][m] = {"mean": float(np.mean(vals)) if vals else None,
                                           "std": float(np.std(vals)) if vals else None, "n": len(vals)}
            out.append(entry)
    return out


def _weighted(rows: list[dict], key: str):
    """Duration-weighted mean (= total bits / total seconds for a bitrate), None if none known."""
    sel = [r for r in rows if _finite(r.get(key))]
    dur = sum(r["dur_s"] for r in sel)
    return sum(r[key] * r["dur_s"] for r in sel) / dur if sel and dur > 0 else None


def _corpus_wer(rows: list[dict], key: str) -> dict:
    sel = [r for r in rows if _finite(r.get(key)) and r.get("n_words", 0) > 0]
    words = sum(r["n_words"] for r in sel)
    errors = sum(r[key] * r["n_words"] for r in sel)
    return {"mean": errors / words if words else None, "n": len(sel), "words": words}


def nan_reasons(rows: list[dict]) -> dict[str, dict[str, int]]:
    """metric -> {reason: number of decodes}."""
    out: dict[str, Counter] = {}
    for r in rows:
        for metric, reason in r.get("_notes", {}).items():
            out.setdefault(metric, Counter())[reason] += 1
    return {k: dict(v.most_common()) for k, v in out.items()}


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# -- writers ---------------------------------------------------------------------------------------
def write_csv(path: Path, rows: list[dict], metric_names: list[str]) -> None:
    cols = ["clip", "cls", "split", "pkg", "dur_s", "codec", "kbps", "payload_kbps", "lag_ms", "code_s",
            *metric_names]
    if "wer" in metric_names:
        cols += ["wer_ref", "n_words"]
    cols.append("notes")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])


def _cell(v):
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(v) else f"{float(v):.6g}"
    return "" if v is None else v


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None or not _finite(v) else f"{v:.{digits}f}"


def markdown(summary: list[dict], meta: dict, metric_names: list[str], reasons: dict, figures: list[str]
             ) -> str:
    info = _metrics.INFO
    lines = ["# Codec evaluation", ""]
    codecs = meta["codecs"]
    hours = {e["codec"]: e["hours"] for e in summary if e["cls"] == "all"}
    cut = f", clips cut to their first {meta['max_seconds']:g} s" if meta.get("max_seconds") else ""
    lines += [
        f"- **reference**: `{meta['ref']}` ({meta['ref_kind']}), split {meta['split']}, classes "
        f"{meta['classes'] if isinstance(meta['classes'], str) else ', '.join(meta['classes'])}; "
        f"{meta['n_clips']} clips, {max(hours.values(), default=0):.3f} h scored per codec{cut}",
    ]
    if meta.get("listening_page"):
        lines.append(f"- **listening page**: [{meta['listening_page']}]({meta['listening_page']}) (players, "
                     "spectrograms and metrics per clip; one self-contained file)")
    if meta.get("skipped"):
        lines.append(f"- **skipped clips**: {len(meta['skipped'])} (unreadable; see summary.json)")
    for c in codecs:
        if c["kind"] == "model":
            lines.append(f"- **{c['name']}**: model `{meta['model']}` (config {c['config']}, sha "
                         f"{c['model_sha'][:12]}, token rate {c['token_rate']}), diffusion steps "
                         f"{c['steps']}, seed {c['seed']}")
        elif c["kind"] == "baseline":
            lines.append(f"- **{c['name']}**: baseline (nominal {c['nominal_kbps']:g} kbit/s)")
        else:
            lines.append(f"- **{c['name']}**: decoded files in `{c['folder']}`")
    s = meta["metric_settings"]
    lm = s["logmel"]
    pk = ", ".join(f"{k} {v}" for k, v in s["packages"].items())
    lines += [
        f"- **ViSQOL**: speech mode at 16 kHz, **{meta['visqol_mapping']}** mapping (pinned; scores "
        "from the other mapping are on a different scale)"
        + ("; **ViSQOL-audio**: audio mode at 48 kHz of the 16 kHz pair upsampled, SVR mapping"
           if "visqol_audio" in meta.get("metrics", ()) else ""),
        f"- **log-mel L1**: {lm['n_mels']} Slaney mels 0-{lm['fmax']} Hz, n_fft {lm['n_fft']}, hop "
        f"{lm['hop']}, log(mel power + {lm['log_eps']:g}); lower is better",
        "- **SI-SDR** in dB (meaningless for parametric codecs such as codec2); **WER**: pocketsphinx "
        "en-us, corpus-level, for English clips with a transcript (in brackets: the ASR on the original)",
        f"- **alignment**: envelope cross-correlation ({meta['alignment']['envelope_step_ms']:g} ms, "
        f"+-{meta['alignment']['max_delay_ms']:g} ms), then waveform refinement; the decode is cut or "
        "zero-padded to the reference length",
        f"- **bitrate**: {meta['bitrate']}",
        f"- **packages**: {pk}",
        f"- created {meta['created']} by semanticodec_rt {meta['semanticodec_rt']} in {meta['runtime_s']} s",
        "",
    ]
    cols = [m for m in metric_names]
    head = ["codec", "clips", "hours", "kbps"] + [
        info[m].label + (" (dB)" if info[m].unit == "dB" else "") + (" ↑" if info[m].higher_is_better else " ↓")
        for m in cols]
    classes = [c for c in dict.fromkeys(e["cls"] for e in summary)]
    for cls in ["all"] + [c for c in classes if c != "all"]:
        entries = [e for e in summary if e["cls"] == cls]
        if not entries:
            continue
        lines += [f"## {'all classes' if cls == 'all' else cls}", "",
                  "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        for e in entries:
            kbps = _fmt(e["kbps"], 2)
            if e["payload_kbps"] is not None:
                kbps += f" (payload {_fmt(e['payload_kbps'], 2)})"
            cells = [e["codec"], str(e["n_clips"]), f"{e['hours']:.4f}", kbps]
            for m in cols:
                v = e["metrics"][m]
                digits = 1 if m == "si_sdr" else 3
                cell = _fmt(v["mean"], digits)
                if m == "wer" and v["mean"] is not None:
                    cell += f" ({_fmt(e['metrics']['wer_ref']['mean'])})"
                cells.append(cell)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if reasons:
        lines += ["## Empty scores (n/a)", ""]
        for metric, rs in reasons.items():
            for reason, n in rs.items():
                lines.append(f"- {metric}: {reason} ({n} decode{'s' if n != 1 else ''})")
        lines.append("")
    lines += ["## Figures", ""]
    if figures:
        lines += [f"![{Path(f).stem}]({f})" for f in figures]
    else:
        lines.append(f"none ({meta.get('figures_note', 'no figures')})")
    lines.append("")
    return "\n".join(lines)


def bitrate_chart(path: Path, summary: list[dict], metric_names: list[str]) -> bool:
    """Mean metric vs kbps, one colour per codec, one marker per class; False if nothing to plot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import ScalarFormatter

    plotted = [m for m in CHART_METRICS if m in metric_names]
    points = [e for e in summary if e["kbps"] is not None]
    if not plotted or not points:
        return False
    codecs = list(dict.fromkeys(e["codec"] for e in points))
    colors = {c: f"C{i % 10}" for i, c in enumerate(codecs)}
    markers = {"all": "*", "speech": "o", "music": "s", "sfx": "^", "other": "D"}
    ncols = 2 if len(plotted) > 1 else 1
    nrows = (len(plotted) + ncols - 1) // ncols
    fig = Figure(figsize=(5.5 * ncols, 4 * nrows), dpi=100)
    FigureCanvasAgg(fig)
    for i, m in enumerate(plotted):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for e in points:
            v = e["metrics"][m]["mean"]
            if v is None:
                continue
            ax.scatter(e["kbps"], v, color=colors[e["codec"]], marker=markers.get(e["cls"], "D"),
                       s=90 if e["cls"] == "all" else 40, edgecolors="black" if e["cls"] == "all" else "none")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(ScalarFormatter())
        ax.tick_params(axis="x", which="minor", labelsize=7)
        ax.set_xlabel("bitrate (kbit/s, file bytes)")
        info = _metrics.INFO[m]
        ax.set_ylabel(f"{info.label} ({'higher' if info.higher_is_better else 'lower'} is better)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [fig.axes[0].scatter([], [], color=colors[c], marker="o", label=c) for c in codecs]
    handles += [fig.axes[0].scatter([], [], color="grey", marker=markers.get(k, "D"), label=k)
                for k in dict.fromkeys(e["cls"] for e in points)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8, frameon=False)
    fig.suptitle("bitrate vs quality (mean over clips)")
    fig.tight_layout(rect=(0, 0.08, 1, 0.96))
    fig.savefig(path)
    return True


def spectrogram_figure(path: Path, title: str, original: np.ndarray, decodes: dict) -> None:
    """Log-mel spectrograms: the original on top, then each codec (its kbps in the label)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = [("original", original)] + [
        (f"{name} ({kbps:.2f} kbit/s)" if _finite(kbps) else name, y) for name, (y, kbps) in decodes.items()]
    fig = Figure(figsize=(10, 1.9 * len(panels) + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    ref = _metrics.log_mel(original)
    vmax = float(ref.max())
    vmin = vmax - 12.0  # ~52 dB of power range
    dur = len(original) / _metrics.SAMPLE_RATE
    for i, (label, y) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, i + 1)
        im = ax.imshow(_metrics.log_mel(y), origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax,
                       extent=(0, dur, 0, _metrics.LOGMEL_N_MELS))
        ax.set_ylabel("mel bin")
        ax.set_title(label, fontsize=9, loc="left")
        if i < len(panels) - 1:
            ax.set_xticklabels([])
    ax.set_xlabel("time (s)")
    fig.colorbar(im, ax=fig.axes, shrink=0.6, label="log mel power")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path)


def write_report(out: Path, rows: list[dict], meta: dict, codec_names: list[str], metric_names: list[str],
                 figure_audio: dict) -> dict:
    """Write every report file into ``out``; returns the JSON object."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, codec_names, metric_names)
    reasons = nan_reasons(rows)
    write_csv(out / CSV_NAME, rows, metric_names)
    figures: list[str] = []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        meta["figures_note"] = "matplotlib is not installed (pip install matplotlib)"
    else:
        if bitrate_chart(out / CHART_NAME, summary, metric_names):
            figures.append(CHART_NAME)
        for k, (rel, fa) in enumerate(sorted(figure_audio.items(), key=lambda kv: _CLASS_ORDER.index(kv[1]["cls"])
                                             if kv[1]["cls"] in _CLASS_ORDER else 99), 1):
            name = f"spectrogram_{k}_{_safe(fa['cls'])}.png"
            spectrogram_figure(out / name, f"{fa['cls']}: {rel}", fa["original"], fa["decodes"])
            figures.append(name)
    meta["figures"] = figures
    obj = _json_safe({"meta": meta, "summary": summary, "nan_reasons": reasons,
                      "files": {"csv": CSV_NAME, "markdown": MD_NAME, "figures": figures}})
    (out / JSON_NAME).write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out / MD_NAME).write_text(markdown(summary, meta, metric_names, reasons, figures), encoding="utf-8")
    return obj


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
