"""What CPU a benchmark ran on, and how to make a newer x86 CPU stand in for an AVX2-only one."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# The instruction sets that decide which kernels the models run on.
FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# Caps every library the models' arithmetic goes through at AVX2 (no AVX-512, no VNNI, no AMX,
# no native bf16): torch's own vectorised kernels, oneDNN (bf16/int8 matrix products), MKL
# (float32 matrix products) and FBGEMM (the int8 kernels where AMX is not native). What this does not emulate:
# the clock, caches and memory bandwidth stay the host's, so absolute times read faster than on
# an older AVX2 machine (a 2-core Zen 1 EPYC measured /ask p50 246 ms where this emulation, on an
# AMX Xeon, measured about half that); ratios between variants carry over better than absolutes.
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
}
KINDS = ("native", "avx2")


def describe() -> dict[str, Any]:
    """CPU model, core count and the instruction sets of :data:`FLAGS` it has; and, when this
    process runs under :data:`AVX2_ENV`, that it is emulating an AVX2-only CPU."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    emulated = all(os.environ.get(k) == v for k, v in AVX2_ENV.items())
    return {
        "model": model,
        "cpus": os.cpu_count(),
        "instruction_sets": [f for f in FLAGS if f in flags],
        "kind": "avx2 (emulated)" if emulated else "native",
        "native_bf16": "amx_bf16" in flags and not emulated,
        "python": platform.python_version(),
    }


def unknown_kind(kinds: list[str]) -> str | None:
    """The one-line error for the first kind not in :data:`KINDS` (or for none at all), or None."""
    if not kinds:  # a run of no kind would write an empty table over the day's results
        return f"error: no CPU kind given (choose from: {', '.join(KINDS)})"
    unknown = sorted(set(kinds) - set(KINDS))
    return f"error: unknown CPU kind {unknown[0]!r} (choose from: {', '.join(KINDS)})" if unknown else None


def run_per_kind(module: str, argv: list[str], kinds: list[str], cwd: Path) -> list[dict[str, Any]]:
    """``python -m <module> <argv> --worker FILE`` once per CPU kind, each in its own process (the
    AVX2 caps must be set before torch loads); returns what each worker wrote to FILE as JSON."""
    results = []
    for kind in kinds:
        env = {**os.environ, **(AVX2_ENV if kind == "avx2" else {})}
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "kind.json"
            subprocess.run([sys.executable, "-m", module, *argv, "--worker", str(out)],
                           check=True, env=env, cwd=cwd)  # fmt: skip
            results.append(json.loads(out.read_text()))
    return results
