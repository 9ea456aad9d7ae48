"""The command line: ``semanticodec-rt`` (or ``python -m semanticodec_rt``).

Commands::

    semanticodec-rt encode    IN.wav  OUT.scrt    audio -> tokens
    semanticodec-rt decode    IN.scrt OUT.wav     tokens -> 16 kHz audio
    semanticodec-rt roundtrip IN.wav  OUT.wav     both, in memory
    semanticodec-rt info      FILE.scrt           what a .scrt holds (no model needed)
    semanticodec-rt data build --out DIR --tier T  the offline training corpus (semanticodec_rt.lab.data)
    semanticodec-rt eval --ref DIR|MANIFEST       objective scores vs baselines (semanticodec_rt.lab.eval)
    semanticodec-rt bench                         speed: reference formulation vs ours
    semanticodec-rt train STAGE --out RUN         one training stage, or export (semanticodec_rt.lab.train)
    semanticodec-rt live                          mic -> tokens -> speaker loopback (semanticodec_rt.live)
    semanticodec-rt link send|recv                UDP voice link (semanticodec_rt.link)

Without a command name the mode follows the suffixes, as in encodec's CLI: ``IN.wav OUT.scrt``
encodes, ``IN.scrt OUT.wav`` decodes, ``IN.wav OUT.wav`` does both.

Real-time presets are encoded in ~1 s blocks by the streaming encoder and their packets written as
they come; they are decoded by the streaming decoder a few units at a time straight into the WAV
file, so neither side holds a long file's tokens or audio twice.  Official configs go through
``SemantiCodec.encode`` / ``decode`` on the whole file (their 10.24 s windows need no more).

Outputs are written to a temporary file next to the target and renamed at the end, so a failed
run never leaves half a file behind (nor destroys the old one under ``--force``).

Expected failures print one line ``semanticodec-rt: error: <message>`` to stderr and exit with

* 2 -- the command line or an input is unusable: bad options, a missing or unreadable input,
  unsupported/empty/non-finite audio, a malformed ``.scrt`` (:class:`BitstreamError`), a
  ``.scrt`` made by another model (:class:`ModelMismatchError`), an existing output without
  ``--force``, no model given and none shipped;
* 1 -- the model cannot be loaded (:class:`CheckpointError`, :class:`CheckpointMismatchError`)
  or the system refuses (an ``OSError`` such as a full disk); for ``data``: a missing tool
  (apt-get, dpkg-deb), an unreachable Debian mirror or another :class:`DataError`.

Anything else is a bug and keeps its traceback.  This package imports torch only for commands that
run the model, so ``info``, ``data`` and ``--help`` start quickly.

Layout: :mod:`.app` (entry point, parsing, suffix mode, errors and exit codes), :mod:`.models`
(``--model`` loading), :mod:`.codec_cmds` (encode, decode, roundtrip, info), :mod:`.data_cmd`,
:mod:`.eval_cmd` and :mod:`.bench_cmd`.
"""

from .app import COMMANDS, PROG, CliError, build_parser, main, parse_args
from .bench_cmd import cmd_bench
from .codec_cmds import (
    DECODE_UNITS, ENCODE_BLOCK, SAMPLE_RATE, cmd_decode, cmd_encode, cmd_info, cmd_roundtrip, scrt_report,
    stream_info,
)
from .data_cmd import cmd_data_build
from .eval_cmd import cmd_eval
from .models import DEFAULT_MODEL, load_codec

__all__ = [
    "COMMANDS",
    "DECODE_UNITS",
    "DEFAULT_MODEL",
    "ENCODE_BLOCK",
    "PROG",
    "SAMPLE_RATE",
    "CliError",
    "build_parser",
    "cmd_bench",
    "cmd_data_build",
    "cmd_decode",
    "cmd_encode",
    "cmd_eval",
    "cmd_info",
    "cmd_roundtrip",
    "load_codec",
    "main",
    "parse_args",
    "scrt_report",
    "stream_info",
]
