"""Progress bars and the console every stage prints to."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console(highlight=False)

# bitsandbytes looks for a faster 4-bit CPU kernel on the hub when imported and warns when offline; its own
# kernel runs instead, so the warning only alarms. Set here, as the import comes early (through peft).
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

T = TypeVar("T")


def bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # Off when the output is a log file: a bar there is only blank lines.
        disable=not console.is_terminal,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a progress bar that disappears when done (the stage prints its own summary)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def quiet_libraries() -> None:
    """Keep the console to knowtune's own lines: the libraries' bars and notices repeat what we show.

    Warnings are not silenced here: each known one is, around the call that raises it (scoped.quiet)."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
