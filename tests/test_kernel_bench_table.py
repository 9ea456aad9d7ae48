"""The kernel benchmark's table (semanticodec_rt.lab.bench.kernel_bench): medians with their
spread, shares of the measured fp32 / bf16 peaks, and the C++ nearest-centroid path. No timing
is asserted, only that each column says what it claims."""

import pytest
import torch

from semanticodec_rt import ops
from semanticodec_rt.lab.bench import kernel_bench as B

pytestmark = pytest.mark.bench


def test_nearest_centroid_rows_carry_spread_peaks_and_path():
    if "cpp" not in ops.available_backends():
        pytest.skip("C++ backend not built")
    cpu = torch.device("cpu")
    ceilings = B.measured_ceilings(cpu, repeat=1)
    assert ceilings["fp32_peak"] > 0 and ceilings["bf16_peak"] >= 0
    rows = B.bench_nearest_centroid(64, 512, 48, cpu, ceilings, repeat=5)
    ours = [r for r in rows if r.impl == "ours (cpp)"]
    assert len(ours) == 1 and ours[0].note == f"path {B.nearest_centroid_path(64, 512, 48)}"
    for r in rows:
        assert r.spread[0] <= r.seconds <= r.spread[1]
        assert r.fp32_peak_pct == pytest.approx(100 * r.rate / ceilings["fp32_peak"])
    table = B.markdown(rows, "test CPU", ceilings, 2, 5, B.nearest_centroid_path())
    assert "median of 5 runs" in table and "% bf16 peak" in table and "fp32 FMA peak" in table
    assert f"C++ nearest-centroid path (N=512 K=16384 D=768): {B.nearest_centroid_path()}" in table
    assert f"| ours (cpp) [path {B.nearest_centroid_path(64, 512, 48)}] |" in table


def test_timed_runs_and_median():
    calls = []
    times = B.timed_runs(lambda: calls.append(1), repeat=5)
    assert len(times) == 5 and len(calls) == 6  # one warm-up
    assert B.median_time(lambda: None, repeat=5) >= 0
