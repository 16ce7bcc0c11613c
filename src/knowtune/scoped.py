"""Changes to process-wide state that last only as long as the code that needs them.

A stage must not leave the environment, warning filters or thread counts changed for the stages after it
(or for a sweep's next trial): each change here is undone when its block ends.
"""

from __future__ import annotations

import os
import re
import warnings
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables the user has not set, for the block only."""
    added = {k: v for k, v in values.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


# peft (wrapping a model) and TRL (around generation in DPO) still ask a model `is_gradient_checkpointing`, which
# transformers 5 renamed: a FutureWarning about their code, not the user's, on every training run.
LIBRARIES_ASK_OLD_NAME = "`is_gradient_checkpointing` is deprecated"


@contextmanager
def quiet(*messages: str, category: type[Warning] = Warning) -> Iterator[None]:
    """Hide warnings whose message starts with one of `messages` (known, harmless ones), in the block only."""
    with warnings.catch_warnings():
        for message in messages:
            warnings.filterwarnings("ignore", message=re.escape(message), category=category)
        yield
