"""Whether this machine computes a 16-bit dtype policy natively, and a warning when not.

A graph built under "mixed_bfloat16" or "mixed_float16" (``Config.MIXED_PRECISION``) runs its
convolutions in 16 bits. GPUs and TPUs do that natively. On a CPU, oneDNN has native
bfloat16 kernels only with AVX512_BF16 or AMX-BF16 (x86) or the BF16 extension (Arm), and
native float16 kernels only with AVX512_FP16 or AMX-FP16; elsewhere each 16-bit op is
emulated in float32 with conversions around it, which is slower than float32 itself.
Building such a graph where only the CPU would run it warns once per policy and process.
"""
import os
import warnings

import tensorflow as tf

# CPU feature flags (as /proc/cpuinfo spells them) that give oneDNN native kernels.
NATIVE_CPU_FLAGS = {
    "mixed_bfloat16": ("avx512_bf16", "amx_bf16", "bf16"),
    "mixed_float16": ("avx512_fp16", "amx_fp16"),
}
_warned = set()


class PrecisionWarning(UserWarning):
    """A 16-bit policy will be emulated on this machine (slower than float32)."""


def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags as a set of lower-case names, or None where unknown.

    Reads the "flags" (x86) or "Features" (Arm) line of Linux's cpuinfo; other systems
    give None (nothing is assumed about them).
    """
    if not os.path.exists(cpuinfo_path):
        return None
    with open(cpuinfo_path) as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.strip().lower() in ("flags", "features"):
                return set(value.lower().split())
    return None


def has_accelerator():
    """True when TensorFlow sees a GPU or a TPU (they run both 16-bit policies)."""
    return bool(tf.config.list_physical_devices("GPU")
                or tf.config.list_physical_devices("TPU"))


def cpu_runs_natively(policy, flags):
    """Whether a CPU with feature `flags` runs `policy` natively (None: cannot tell)."""
    if policy not in NATIVE_CPU_FLAGS:
        return True
    if flags is None:
        return None
    return any(flag in flags for flag in NATIVE_CPU_FLAGS[policy])


def warn_if_emulated(policy, flags=None, accelerator=None):
    """Warn (once per policy) when only a CPU without native kernels would run `policy`.

    Args:
        policy: a Keras dtype policy name, e.g. config.MIXED_PRECISION.
        flags: CPU flags (default: `cpu_flags()`); accelerator: whether a GPU/TPU is
            present (default: `has_accelerator()`). Both are arguments for tests.
    Returns:
        True when it warned.
    """
    if policy not in NATIVE_CPU_FLAGS or policy in _warned:
        return False
    accelerator = has_accelerator() if accelerator is None else accelerator
    if accelerator:
        return False
    native = cpu_runs_natively(policy, cpu_flags() if flags is None else flags)
    if native is not False:
        return False
    _warned.add(policy)
    wanted = " or ".join(name.upper() for name in NATIVE_CPU_FLAGS[policy])
    warnings.warn(
        f"MIXED_PRECISION = {policy!r} on a CPU without {wanted}: its 16-bit ops are "
        f"emulated and run slower than float32; set MIXED_PRECISION = None here",
        PrecisionWarning, stacklevel=3)
    return True
