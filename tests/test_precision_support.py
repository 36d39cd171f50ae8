"""mrcnn.precision_support: which CPUs run 16-bit policies natively, and the warning."""
import warnings

import pytest

from mrcnn import precision_support
from mrcnn.precision_support import (PrecisionWarning, cpu_flags, cpu_runs_natively,
                                     warn_if_emulated)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(precision_support, "_warned", set())


def test_cpu_flags_read_from_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 AVX512F avx512_bf16\n\n"
                   "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(x86)) == {"fpu", "sse2", "avx512f", "avx512_bf16"}
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert "bf16" in cpu_flags(str(arm))
    assert cpu_flags(str(tmp_path / "absent")) is None


def test_native_support_by_flags():
    assert cpu_runs_natively("mixed_bfloat16", {"avx512f", "avx512_bf16"})
    assert cpu_runs_natively("mixed_bfloat16", {"amx_bf16"})
    assert not cpu_runs_natively("mixed_bfloat16", {"avx512f", "avx2"})
    assert not cpu_runs_natively("mixed_float16", {"avx512_bf16"})
    assert cpu_runs_natively("mixed_float16", {"avx512_fp16"})
    assert cpu_runs_natively("mixed_bfloat16", None) is None
    assert cpu_runs_natively("float32", set())


def test_warns_once_on_an_emulating_cpu():
    with pytest.warns(PrecisionWarning, match="AVX512_BF16 or AMX_BF16 or BF16"):
        assert warn_if_emulated("mixed_bfloat16", flags={"avx2"}, accelerator=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_emulated("mixed_bfloat16", flags={"avx2"}, accelerator=False)


def test_no_warning_where_it_runs_natively_or_cannot_tell(monkeypatch):
    monkeypatch.setattr(precision_support, "cpu_flags", lambda: None)   # not Linux
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not warn_if_emulated("mixed_bfloat16", flags={"avx512_bf16"},
                                    accelerator=False)
        assert not warn_if_emulated("mixed_float16", flags={"avx2"}, accelerator=True)
        assert not warn_if_emulated("mixed_float16", accelerator=False)
        assert not warn_if_emulated(None, flags=set(), accelerator=False)
        assert not warn_if_emulated("float32", flags=set(), accelerator=False)
