"""What this machine's CPU can do fast, asked once, for every stage that picks a speed path by it.

The machines a project runs on differ: some x86 CPUs multiply bfloat16 natively (AVX512-BF16, AMX),
others have AVX2 only, where bfloat16 is emulated and several times slower than float32. Curation's
embeddings and training's `precision: auto` both choose by `native_bf16()`.

`KNOWTUNE_BF16=0` (or `1`) overrides the detection: with `ATEN_CPU_CAPABILITY=avx2` and
`ONEDNN_MAX_CPU_ISA=AVX2` it lets an AVX-512 machine take the path an AVX2-only one takes.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache

OVERRIDE = "KNOWTUNE_BF16"


class HardwareError(ValueError):
    """A setting that needs hardware this machine does not have."""


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True when torch's CPU kernels have bfloat16 instructions to run on."""
    forced = os.environ.get(OVERRIDE, "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    import torch

    # Private, but they ask the questions that matter. The first reads the CPU's flags; the second whether
    # oneDNN (which runs bfloat16 matrix products) will use them (ONEDNN_MAX_CPU_ISA can forbid it); and
    # ATen's own kernels (norms, softmax) must not be held below AVX-512 (ATEN_CPU_CAPABILITY).
    flags = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    onednn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    capability = torch.backends.cpu.get_cpu_capability()
    return bool(flags and flags() and onednn and onednn() and capability.startswith("AVX512"))


def refuse_emulated_bf16(key: str, instead: str) -> None:
    """A bf16 setting fails here, before anything loads, on a CPU-only machine that would emulate it."""
    import torch

    if not torch.cuda.is_available() and not native_bf16():
        raise HardwareError(f"{key}: bf16 on this CPU would be emulated, several times slower than float32 "
                            f"(it has no AVX512-BF16 or AMX); use {instead}")


def cpu_kind() -> str:
    """A short name for the CPU's vector features, for logs and benchmark tables."""
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return f"{capability}{' AMX' if amx else ''}, bfloat16 {'native' if native_bf16() else 'emulated: float32 used'}"


@contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to `n` for the block, then put back as they were.

    A kernel may split a product differently over a different number of threads and round differently, so
    code whose results must not depend on the machine's load or on what ran before fixes the count here.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
