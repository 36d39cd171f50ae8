"""mrcnn.console: TensorFlow's start-up noise is kept off stderr; real errors are not."""
import io
import os
import subprocess
import sys

import pytest

from mrcnn.console import NoiseFilter, filter_stream

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lines TensorFlow 2.21 printed on stderr at start-up on a 2-core CPU machine without CUDA.
ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = ("I0000 00:00:1796299921.711256    4336 port.cc:153] oneDNN custom operations are on. "
          "You may see slightly different numerical results due to floating-point round-off "
          "errors from different computation orders. To turn them off, set the environment "
          "variable `TF_ENABLE_ONEDNN_OPTS=0`.")
NO_DRIVER = ("I0000 00:00:1796299921.711508    4336 cudart_stub.cc:31] Could not find cuda "
             "drivers on your machine, GPU will not be used.")
CPU_GUARD = ("I0000 00:00:1796299921.752778    4336 cpu_feature_guard.cc:227] This TensorFlow "
             "binary is optimized to use available CPU instructions in performance-critical "
             "operations.")
CPU_GUARD_NEXT = ("To enable the following instructions: AVX2 AVX512F FMA, in other operations, "
                  "rebuild TensorFlow with the appropriate compiler flags.")
CUINIT = ("E0000 00:00:1796299924.261606    4336 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
INT32 = ("E0000 00:00:1796299993.572087    5222 util.cc:131] oneDNN supports DT_INT32 only on "
         "platforms with AVX-512. Falling back to the default Eigen-based implementation if "
         "present.")
REAL = "E0000 00:00:1796299993.6    5222 op_kernel.cc:1830] OP_REQUIRES failed: out of memory"
MARKERS = ("absl::InitializeLog", "oneDNN", "cudart_stub", "cuInit", "cpu_feature_guard")


def _kept(lines):
    noise = NoiseFilter()
    return [line for line in lines if not noise.is_noise(line)]


def test_start_up_lines_are_dropped_twice_over_and_others_kept():
    lines = [ABSL, ONEDNN, NO_DRIVER, CPU_GUARD, CPU_GUARD_NEXT, ABSL, ONEDNN, NO_DRIVER,
             CUINIT, "Epoch 1/2", INT32, REAL, "Traceback (most recent call last):"]
    assert _kept(lines) == ["Epoch 1/2", REAL, "Traceback (most recent call last):"]


def test_cuinit_failure_stays_on_a_machine_with_a_cuda_driver():
    # Without the "no driver" line first, a failing cuInit is a real problem.
    assert _kept([ONEDNN, CUINIT]) == [CUINIT]
    other_error = CUINIT.replace("UNKNOWN ERROR (303)", "CUDA_ERROR_NO_DEVICE (100)")
    assert _kept([NO_DRIVER, other_error]) == [other_error]


def test_instruction_list_is_dropped_only_after_its_first_line():
    assert _kept([CPU_GUARD_NEXT]) == [CPU_GUARD_NEXT]
    assert _kept([CPU_GUARD, "x", CPU_GUARD_NEXT]) == ["x", CPU_GUARD_NEXT]


def test_filter_stream_passes_bytes_through_unchanged():
    text = f"{ABSL}\nkept é\r\n{INT32}\nno newline at the end".encode()
    sink = io.BytesIO()
    filter_stream(io.BytesIO(text), sink)
    assert sink.getvalue() == "kept é\r\nno newline at the end".encode()


# Entry points run on a weights file that does not exist: TensorFlow loads, then the
# command fails with an error that names the file.
COMMANDS = {
    "convert": ["-m", "mrcnn.convert", "{missing}", "{tmp}/out.h5",
                "--config", "mrcnn.shapes:ShapesConfig"],
    "shapes": ["samples/shapes/shapes.py", "detect", "--weights", "{missing}",
               "--model-dir", "{tmp}", "--out", "{tmp}"],
}


def _run(command, tmp_path, **env):
    args = [a.format(missing=tmp_path / "missing_weights.h5", tmp=tmp_path)
            for a in COMMANDS[command]]
    environment = dict(os.environ, **env)
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)     # as a user's shell has it
    return subprocess.run([sys.executable] + args, capture_output=True, text=True, cwd=ROOT,
                          env=environment, timeout=300)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_entry_point_prints_no_start_up_noise_but_its_error(command, tmp_path):
    quiet = _run(command, tmp_path)
    assert quiet.returncode != 0
    assert "cannot open weights file" in quiet.stderr and "missing_weights.h5" in quiet.stderr
    assert not [m for m in MARKERS if m in quiet.stderr], quiet.stderr
    # The same command without the filter shows the noise, so the check above can fail.
    noisy = _run(command, tmp_path, MRCNN_QUIET_TF="0")
    assert noisy.returncode == quiet.returncode and ABSL in noisy.stderr


def test_traceback_of_a_crashing_script_passes_the_filter(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import os\n"
        "from mrcnn.console import quiet_tensorflow\n"
        "assert quiet_tensorflow()\n"
        f"os.write(2, {(ABSL + chr(10) + REAL + chr(10)).encode()!r})\n"
        "raise RuntimeError('the real problem')\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == REAL and ABSL not in result.stderr
    assert lines[-1] == "RuntimeError: the real problem"
