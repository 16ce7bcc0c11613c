"""llama.cpp's log lines kept off stderr: warnings collected for the caller's report, errors sent to logging.

llama-cpp-python 0.3.36 maps ggml's log levels as they were before ggml added DEBUG at 1 (its table has
WARN = 2, ERROR = 3), so with verbose=False it still prints every warning, e.g. one line per tensor the
quantiser falls back on, and "n_ctx_seq > n_ctx_train". This installs a callback of our own through
llama.cpp's public llama_log_set, reading the levels as ggml.h of the bundled build defines them.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

logger = logging.getLogger("knowtune.export.llama_cpp")

# ggml.h (include/ggml.h in the llama-cpp-python wheel): enum ggml_log_level
WARN, ERROR, CONT = 3, 4, 5

_state = {"last": 0, "lines": None}
_callback = None  # the ctypes callback must outlive every call llama.cpp makes to it


def quiet_llama_cpp() -> None:
    """From now on llama.cpp prints nothing: warnings go to an open llama_cpp_warnings() block, errors to logging."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data) -> None:
        level = _state["last"] if level == CONT else level
        _state["last"] = level
        line = text.decode("utf-8", errors="replace")
        if level >= WARN and _state["lines"] is not None:
            _state["lines"].append(line)
        if level >= ERROR:
            logger.error(line.rstrip())

    _callback = collect
    llama_cpp.llama_log_set(_callback, None)


@contextlib.contextmanager
def llama_cpp_warnings() -> Iterator[list[str]]:
    """Within the block llama.cpp prints nothing; the list fills with its warning lines."""
    quiet_llama_cpp()
    lines: list[str] = []
    previous, _state["lines"] = _state["lines"], lines
    try:
        yield lines
    finally:
        _state["lines"] = previous
