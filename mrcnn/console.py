"""Keep TensorFlow's start-up noise off the console, and nothing else.

TensorFlow 2.21 logs through absl before absl's logging is initialised, so these lines go
to stderr whatever TF_CPP_MIN_LOG_LEVEL says, some of them twice (two libraries load the
same code), and two of them at error level although nothing failed::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. You may see ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ... (303)
    E0000 ... util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back ...

`quiet_tensorflow()`, called before TensorFlow is imported, sends file descriptor 2 through a
small filter process that drops exactly these lines (`is_noise`) and passes every other byte
through, so Python tracebacks and TensorFlow's real errors still reach the console. The
cuInit failure is dropped only after TensorFlow said it found no CUDA driver: on a machine
with a driver it is a real error and stays. The entry points of this package (the samples,
`python -m mrcnn.convert`, the notebooks) call it; call it at the top of your own script::

    from mrcnn.console import quiet_tensorflow
    quiet_tensorflow()
    import mrcnn.model as modellib

`MRCNN_QUIET_TF=0` in the environment turns the filter off. The filter runs in its own
process (this file, run as a script), so output written just before a crash still passes.
"""
import atexit
import os
import re
import subprocess
import sys

ENV_SWITCH = "MRCNN_QUIET_TF"

# absl's prefix: severity letter, MMDD, time, thread id, file:line]
_PREFIX = r"^[IWEF]\d{4} [\d:. ]+\s+\d+ "
_ABSL_WARNING = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$")
_NO_DRIVER = re.compile(_PREFIX + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your "
                        r"machine, GPU will not be used\.$")
_CUINIT = re.compile(_PREFIX + r"cuda_platform\.cc:\d+\] failed call to cuInit: .*\(303\)$")
_ONEDNN_ON = re.compile(_PREFIX + r"port\.cc:\d+\] oneDNN custom operations are on\.")
_ONEDNN_INT32 = re.compile(_PREFIX + r"util\.cc:\d+\] oneDNN supports DT_INT32 only on "
                           r"platforms with AVX-512\. Falling back to the default Eigen-based "
                           r"implementation if present\.$")
_CPU_GUARD = re.compile(_PREFIX + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is "
                        r"optimized to use available CPU instructions")
_CPU_GUARD_NEXT = re.compile(r"^To enable the following instructions: .* in other operations, "
                             r"rebuild TensorFlow with the appropriate compiler flags\.$")


class NoiseFilter:
    """Decides line by line (text without its newline) whether a line is start-up noise.

    Stateful: the cuInit failure counts as noise only after the "no CUDA driver" line, and
    the second line of the CPU-instructions note only right after its first line.
    """

    def __init__(self):
        self.no_driver = False
        self._after_cpu_guard = False

    def is_noise(self, line):
        after_cpu_guard, self._after_cpu_guard = self._after_cpu_guard, False
        if _NO_DRIVER.match(line):
            self.no_driver = True
            return True
        if _CPU_GUARD.match(line):
            self._after_cpu_guard = True
            return True
        if after_cpu_guard and _CPU_GUARD_NEXT.match(line):
            return True
        if self.no_driver and _CUINIT.match(line):
            return True
        return bool(_ABSL_WARNING.match(line) or _ONEDNN_ON.match(line)
                    or _ONEDNN_INT32.match(line))


def filter_stream(source, sink):
    """Copy binary stream `source` to `sink` line by line, dropping noise lines."""
    noise = NoiseFilter()
    for raw in iter(source.readline, b""):
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not noise.is_noise(text):
            sink.write(raw)
            sink.flush()


_installed = None


def quiet_tensorflow():
    """Route this process's stderr (fd 2) through the noise filter; returns True if it did.

    Call it before TensorFlow is imported (later calls do nothing). A no-op when
    MRCNN_QUIET_TF=0, off POSIX, or when stderr is not a file descriptor.
    """
    global _installed
    if _installed is not None:
        return _installed
    _installed = False
    if os.environ.get(ENV_SWITCH, "1") == "0" or os.name != "posix":
        return False
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        sys.stderr.flush()
        original = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False
    child = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__)],
                             stdin=subprocess.PIPE, stdout=original, stderr=original,
                             close_fds=True)
    os.dup2(child.stdin.fileno(), 2)
    child.stdin.close()
    atexit.register(_restore, original, child)
    _installed = True
    return True


def _restore(original, child):
    """At exit: put the real stderr back and let the filter pass what it still holds."""
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(original, 2)       # closes the last write end held by this process
    os.close(original)
    try:
        child.wait(timeout=5)  # subprocesses still writing keep it alive; do not hang
    except subprocess.TimeoutExpired:
        pass


if __name__ == "__main__":
    import signal

    # Ctrl-C is meant for the program: the filter lives on to pass its traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    filter_stream(sys.stdin.buffer, sys.stdout.buffer)
