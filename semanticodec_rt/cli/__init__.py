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

The commands call the library's front door (:func:`semanticodec_rt.load_model`,
:func:`~semanticodec_rt.compress`, :func:`~semanticodec_rt.decompress`): the model's windowing
decides how a file is cut (real-time presets stream in 1 s blocks and a few units at a time;
the published model works on the whole file, its 10.24 s windows need no more).

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

Layout: :mod:`.app` (entry point, parsing, suffix mode, errors and exit codes), :mod:`.common`
(what the commands share: options, ``--model`` loading, files), :mod:`.codec_cmds` (encode,
decode, roundtrip, info), :mod:`.data_cmd`, :mod:`.eval_cmd`, :mod:`.bench_cmd`,
:mod:`.train_cmd`, :mod:`.live_cmd` and :mod:`.link_cmd`.  Nothing outside this package imports it
(the examples, live, link, eval and bench use the library).
"""

from .app import build_parser, main, parse_args
from .common import COMMANDS, PROG, CliError

__all__ = ["COMMANDS", "PROG", "CliError", "build_parser", "main", "parse_args"]
