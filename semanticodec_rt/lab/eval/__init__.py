"""Objective evaluation of the codec against references and against baseline codecs.

``semanticodec-rt eval --ref DIR|MANIFEST ...`` codes every clip with our model and with
baseline codecs (codec2, opus), scores each decode against the original and writes a per-clip
CSV, per-class / per-codec summaries (Markdown + JSON) and figures.  ``--decoded DIR`` scores a
folder of already-decoded files, so any codec can be compared; one run can hold several such
folders and several step counts of the model (``--steps 0,1,2,4``), one report row each.

Modules:

* :mod:`.metrics` -- STOI, ESTOI, PESQ-WB, ViSQOL (speech mode, pinned mapping), log-mel
  distance, SI-SDR and WER (pocketsphinx); each ``f(ref, deg, sr=16000) -> float``;
* :mod:`.align` -- envelope cross-correlation + waveform refinement, and length matching;
* :mod:`.baselines` -- codec2 and opus run as programs (``codec2:1400``, ``opus:6``, ...);
* :mod:`.run` -- clip discovery (folder or manifest), the coding/scoring loop;
* :mod:`.report` -- CSV, Markdown, JSON and PNG outputs.

The metric set, the baseline commands and the reference numbers they reproduce are described in
``shared/notes/data_metrics_baselines.md`` (sections 4 and 5).
"""

from __future__ import annotations


class EvalError(Exception):
    """An expected failure of the evaluation (bad input, missing program); ``code`` is the exit
    status the command line uses (2: unusable input or options, 1: the system/a tool failed)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


__all__ = ["EvalError"]
