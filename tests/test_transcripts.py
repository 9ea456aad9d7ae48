"""English transcripts for eval's WER (``semanticodec-rt data transcripts``,
:mod:`semanticodec_rt.lab.data.transcripts`).

All offline: the transcript list is a small generated ``.txt.gz`` and the corpus a tiny fake one
in ``tmp_path`` (a valid manifest, 16 kHz FLACs); the download and extraction steps are replaced
by the fake extraction.  Checks the list parsing, normalisation, matching by ``src``, the
sidecar files eval reads (through eval's own clip discovery), idempotence and the command line.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from semanticodec_rt import cli
from semanticodec_rt.lab.data import fetch
from semanticodec_rt.lab.data import manifest as mf
from semanticodec_rt.lab.data import packages as P
from semanticodec_rt.lab.data import transcripts as T
from semanticodec_rt.lab.eval import run as eval_run
from semanticodec_rt.lab.eval.metrics import normalize_text

pytestmark = pytest.mark.data

PREFIX = "semanticodec-rt: error:"
VOICE = "/usr/share/asterisk/sounds/en_US_f_Allison/"
LIST = """\
; Core Asterisk Sounds in English
;   a comment: with a colon

agent-pass: Please enter your password followed by the pound key.
  digits/1 :one
digits/2:two
digits/h-1:   first  \t
letters/at: at [@]
beep: [this is a simple beep tone]
silence/9: (9 seconds of silence)
spy-iax2: IAX (note: does not say "2")
dictate/both_help: press * to toggle pause, press # to enter a new dictation filename
conf-adminmenu: Please press 1 to mute, 2 to lock, or 8 to exit.
confbridge-binaural-on: 3D audio enabled
demo-instruct: dial 1234 now.  At least a 28.8 kilobit modem.
vm-goodbye: Good bye.
vm-goodbye: Goodbye!
tt-weasels.g722: Weasels have eaten our phone system.
not a line
unused-name: Nobody has me.
"""


# -- the list --------------------------------------------------------------------------------------
def test_parse_comments_subfolders_and_spacing():
    got = T.parse(LIST)
    assert got["agent-pass"] == "Please enter your password followed by the pound key."
    assert got["digits/1"] == "one" and got["digits/2"] == "two" and got["digits/h-1"] == "first"
    assert got["spy-iax2"] == 'IAX (note: does not say "2")'  # only the first colon separates
    assert got["vm-goodbye"] == "Goodbye!"  # a repeated name: the last line wins
    assert got["tt-weasels"].startswith("Weasels")  # an audio extension in a name is dropped
    assert not any(k.startswith(";") or " " in k for k in got)  # comments and junk lines skipped
    assert len(got) == 15


def test_read_list_plain_or_gzip(tmp_path):
    plain, packed = tmp_path / "l.txt", tmp_path / "l.txt.gz"
    plain.write_text(LIST, encoding="utf-8")
    packed.write_bytes(gzip.compress(LIST.encode("utf-8")))
    assert T.read_list(plain) == T.read_list(packed) == T.parse(LIST)


@pytest.mark.parametrize("raw, words, why", [
    ("Please enter your password followed by the pound key.",
     "please enter your password followed by the pound key", None),
    ("  Agent Logged  off. ", "agent logged off", None),
    ("at [@]", "at", None),
    ('IAX (note: does not say "2")', "iax", None),
    ("Call-Forward on No Answer.", "call forward on no answer", None),
    ("That's it", "that's it", None),
    ("press * to toggle pause, press # to enter", "press star to toggle pause press pound to enter", None),
    ("Please press 1 to mute, 2 to lock, or 0 to exit.",
     "please press one to mute two to lock or zero to exit", None),
    ("3D audio enabled", "three d audio enabled", None),
    ("A.M.", "a m", None),
    ("dial 1234 now", None, T.AMBIGUOUS),
    ("a 28.8 kilobit modem", None, T.AMBIGUOUS),
    ("H.323", None, T.AMBIGUOUS),
    ("[this is a simple beep tone]", None, T.NO_WORDS),
    ("(9 seconds of silence)", None, T.NO_WORDS),
    ("...", None, T.NO_WORDS),
])
def test_normalize(raw, words, why):
    assert T.normalize(raw) == (words, why)
    if words is not None:  # already in the form eval scores
        assert " ".join(normalize_text(words)) == words


def test_name_of_src():
    assert T.name_of(VOICE + "agent-pass.g722") == "agent-pass"
    assert T.name_of(VOICE + "digits/1.g722") == "digits/1"
    assert T.name_of("/usr/share/asterisk/sounds/en/letters/at.gsm") == "letters/at"
    assert T.name_of(VOICE + "tt-weasels.2.g722") == "tt-weasels.2"
    assert T.name_of("/usr/share/other/agent-pass.g722") is None
    assert T.name_of("/usr/share/asterisk/sounds/loose.g722") is None


# -- a fake corpus -----------------------------------------------------------------------------------
EN = [  # (split, package path below the voice folder)
    ("test", "agent-pass"), ("test", "digits/1"), ("test", "beep"), ("test", "not-listed"),
    ("valid", "digits/2"), ("valid", "letters/at"),
    ("train", "dictate/both_help"), ("train", "demo-instruct"), ("train", "vm-goodbye"),
    ("train", "tt-weasels"),
]


def _corpus(root: Path) -> list[dict]:
    """A tiny corpus: the English clips of EN, a Spanish clip and an sfx clip (0.3 s FLACs)."""
    entries = []
    clips = [(s, T.CORPUS_PKG, VOICE + name + ".g722", name.replace("/", "__")) for s, name in EN]
    clips += [("test", "asterisk-core-sounds-es-g722", "/usr/share/asterisk/sounds/es/agent-pass.g722",
               "agent-pass"),
              ("test", "sound-theme-freedesktop", "/usr/share/sounds/freedesktop/stereo/bell.oga", "bell")]
    for split, pkg, src, name in clips:
        p = P.get_package(pkg)
        cls = p.classify(src)
        rel = f"{split}/{cls}/{pkg}/{name}.flac"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, np.full(4800, 0.1, np.float32), 16000, subtype="PCM_16")
        entries.append(mf.make_entry(path=rel, cls=cls, pkg=pkg, licence=p.licence, src=src, orig_sr=16000,
                                     n_samples=4800, split=split, group=f"{pkg}:{src[:-5]}"))
    mf.validate(entries, root)
    mf.write(root / mf.NAME, entries)
    return entries


def _sidecars(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*.txt"))}


def test_match_by_src(tmp_path):
    entries = _corpus(tmp_path)
    found, missing, unused = T.match(entries, T.parse(LIST))
    d = T.CORPUS_PKG
    assert found == {
        f"test/speech/{d}/agent-pass.flac": "please enter your password followed by the pound key",
        f"test/speech/{d}/digits__1.flac": "one",
        f"valid/speech/{d}/digits__2.flac": "two",
        f"valid/speech/{d}/letters__at.flac": "at",
        f"train/speech/{d}/dictate__both_help.flac":
            "press star to toggle pause press pound to enter a new dictation filename",
        f"train/speech/{d}/vm-goodbye.flac": "goodbye",
        f"train/speech/{d}/tt-weasels.flac": "weasels have eaten our phone system",
    }  # the Spanish agent-pass is not matched: other package
    assert missing == [(f"test/speech/{d}/beep.flac", T.NO_WORDS),
                       (f"test/speech/{d}/not-listed.flac", T.NOT_LISTED),
                       (f"train/speech/{d}/demo-instruct.flac", T.AMBIGUOUS)]
    assert "unused-name" in unused and "silence/9" in unused and "agent-pass" not in unused


def test_sidecars_are_what_eval_reads_and_idempotent(tmp_path):
    root = tmp_path / "corpus"
    _corpus(root)
    manifest = (root / mf.NAME).read_bytes()
    res = T.write_transcripts(root, T.parse(LIST), source="x.deb")
    assert res.splits == {"train": {"clips": 4, "transcripts": 3}, "valid": {"clips": 2, "transcripts": 2},
                          "test": {"clips": 4, "transcripts": 2}}
    assert res.reasons == {T.NO_WORDS: 1, T.NOT_LISTED: 1, T.AMBIGUOUS: 1}
    assert (res.written, res.unchanged, res.removed) == (7, 0, 0)
    assert (root / mf.NAME).read_bytes() == manifest  # the manifest is untouched (and still valid)
    mf.validate(mf.read(root / mf.NAME), root)
    files = _sidecars(root)
    assert len(files) == 7 and all(t.endswith("\n") and t.count("\n") == 1 for t in files.values())
    assert files[f"test/speech/{T.CORPUS_PKG}/digits__1.txt"] == "one\n"

    # eval finds them: the test split's English clips with text get WER, the others do not
    _, clips, kind = eval_run.find_clips(root)
    assert kind == "manifest"
    by_rel = {c.rel: c for c in clips}
    assert by_rel[f"test/speech/{T.CORPUS_PKG}/agent-pass.flac"].transcript == \
        "please enter your password followed by the pound key"
    assert sorted(c.rel.rsplit("/", 1)[1] for c in clips if eval_run.wer_applies(c)) == \
        ["agent-pass.flac", "digits__1.flac"]

    # a re-run changes nothing (same bytes, files not rewritten)
    mtimes = {p: (root / p).stat().st_mtime_ns for p in files}
    again = T.write_transcripts(root, T.parse(LIST), source="x.deb")
    assert (again.written, again.unchanged, again.removed) == (0, 7, 0)
    assert _sidecars(root) == files and {p: (root / p).stat().st_mtime_ns for p in files} == mtimes

    # an edited sidecar is restored, a stale one removed, other packages' .txt files left alone
    (root / f"test/speech/{T.CORPUS_PKG}/digits__1.txt").write_text("uno\n")
    (root / f"test/speech/{T.CORPUS_PKG}/beep.txt").write_text("beep\n")
    other = root / "test/speech/asterisk-core-sounds-es-g722/agent-pass.txt"
    other.write_text("hola\n")
    res = T.write_transcripts(root, T.parse(LIST))
    assert (res.written, res.unchanged, res.removed) == (1, 6, 1)
    assert {k: v for k, v in _sidecars(root).items() if T.CORPUS_PKG in k} == files
    assert other.read_text() == "hola\n"


def test_missing_manifest(tmp_path):
    with pytest.raises(T.DataError, match="no manifest.jsonl"):
        T.write_transcripts(tmp_path, {})


# -- the command (download and extraction faked) ------------------------------------------------------
@pytest.fixture
def fake_deb(tmp_path, monkeypatch):
    x = tmp_path / "fake-x"
    doc = x / T.TEXT_PATH
    doc.parent.mkdir(parents=True)
    doc.write_bytes(gzip.compress(LIST.encode("utf-8")))
    calls = []

    def download(names, debs_dir, log=None):
        calls.append((list(names), Path(debs_dir)))
        return {n: Path(debs_dir) / f"{n}_1.6.1-1_all.deb" for n in names}

    monkeypatch.setattr(fetch, "require_tools", lambda: None)
    monkeypatch.setattr(fetch, "download", download)
    monkeypatch.setattr(fetch, "extract", lambda pkg, deb, x_dir: x)
    return calls


def test_cli_data_transcripts(tmp_path, fake_deb, capsys):
    root = tmp_path / "corpus"
    _corpus(root)
    assert cli.main(["data", "transcripts", "--corpus", str(root)]) == 0
    out = capsys.readouterr().out
    assert fake_deb == [(["asterisk-core-sounds-en"], root.resolve() / ".work" / "debs")]
    assert "transcripts from asterisk-core-sounds-en_1.6.1-1_all.deb:" in out
    assert "  test: 2 of 4 English speech clips" in out and "  train: 3 of 4" in out
    assert "7 clips with a transcript, 3 without (ambiguous number: 1, no words: 1, " \
           "not in the transcript list: 1)" in out
    assert "7 written, 0 unchanged, 0 removed" in out
    files = _sidecars(root)
    assert cli.main(["data", "transcripts", "--corpus", str(root), "--work", str(tmp_path / "w"), "-q"]) == 0
    assert capsys.readouterr().out == "" and _sidecars(root) == files
    assert fake_deb[-1][1] == (tmp_path / "w" / "debs").resolve()


def test_cli_data_transcripts_errors(tmp_path, capsys, monkeypatch):
    assert cli.main(["data", "transcripts", "--corpus", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PREFIX) and "no manifest.jsonl" in err[0]
    _corpus(tmp_path)
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    assert cli.main(["data", "transcripts", "--corpus", str(tmp_path)]) == 1
    assert "apt-get not found" in capsys.readouterr().err
    assert cli.main(["data", "transcripts", "--help"]) == 0
    assert "NAME.txt" in capsys.readouterr().out
