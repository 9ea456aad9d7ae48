"""`semanticodec-rt bench`: runs both formulations and prints a ratio line."""

import pytest

from semanticodec_rt.cli import main
from semanticodec_rt.codec import SemantiCodec
from semanticodec_rt.config import rt_config
from semanticodec_rt.lab.bench import codec_bench as bench

pytestmark = pytest.mark.bench


def test_bench_quick_prints_table_and_ratio(capsys, tmp_path):
    out = tmp_path / "bench.md"
    assert main(["bench", "--quick", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| rt-tiny-r100-v8192 | reference | 4 | 2 calls |" in text
    assert "| rt-tiny-r100-v8192 | ours | 1 | batch 2 |" in text
    ratio = [line for line in text.splitlines() if line.startswith("ratio: decode ")]
    assert len(ratio) == 1 and "x faster than the reference" in ratio[0]
    assert out.read_text().startswith("| config |")


def test_rows_measure_what_they_say():
    codec = SemantiCodec.random(rt_config("rt-tiny", 100, 256))
    rows = bench.run(codec, seconds=1.0, steps=[1, 2], reference_steps=4, warmup=False)
    assert [(r.mode, r.steps) for r in rows] == [("reference", 4), ("ours", 1), ("ours", 2)]
    assert all(r.encode_rtf > 0 and r.decode_rtf > 0 and r.latency_ms == 355 for r in rows)


@pytest.mark.parametrize("argv,msg", [(["bench", "--steps", "a,b"], "--steps"), (["bench", "--quick", "--steps", "-1"], ">= 0")])
def test_bench_bad_options(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err
