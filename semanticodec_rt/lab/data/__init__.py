"""An offline 16 kHz training corpus built from audio that ships in Debian ``main`` packages.

``semanticodec-rt data build --out DIR --tier {smoke,core,full}`` downloads the packages with
``apt-get download`` (no root, nothing installed), unpacks them with ``dpkg-deb -x``, sorts
every audio file into speech / music / sfx by per-package path rules, converts it to 16 kHz
mono 16-bit FLAC and writes ``DIR/{train,valid,test,test_unseen}/<class>/<package>/<name>.flac``
plus ``DIR/manifest.jsonl`` and a summary of hours per class and split.

Modules:

* :mod:`.packages` -- the package table (tiers, licences, classification rules, archives,
  held-out packages);
* :mod:`.fetch` -- ``apt-get download`` + ``dpkg-deb -x`` (+ audio entries of zip archives);
* :mod:`.convert` -- any audio file -> 16 kHz mono float -> FLAC, dropping short/silent clips;
* :mod:`.splits` -- group keys and the deterministic train/valid/test/test_unseen split;
* :mod:`.manifest` -- ``manifest.jsonl`` reading, writing and validation;
* :mod:`.build` -- the resumable orchestration behind the command.

The recipe and the measured inventory are in ``shared/notes/data_metrics_baselines.md`` (2.3).
"""

from __future__ import annotations


class DataError(Exception):
    """An expected failure of the data builder (missing tool, unreachable mirror, bad input).

    ``network`` is true when the Debian mirror could not be reached (tests skip on it).
    """

    def __init__(self, message: str, network: bool = False):
        super().__init__(message)
        self.network = network


__all__ = ["DataError"]
