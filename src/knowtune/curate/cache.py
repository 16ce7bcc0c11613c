"""Vectors (MinHash signatures, embeddings) cached by the hash of the text they were computed from,
so changing a threshold reruns curation in seconds instead of recomputing every vector."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Callable

import numpy as np


class VectorCache:
    """One SQLite file; a table per kind of vector and its settings (e.g. minhash with 128 permutations)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, table: str, texts: list[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """Rows for `texts`, computing only those not cached; `compute` gets the missing texts, unique, in order."""
        name = "v_" + hashlib.sha256(table.encode()).hexdigest()[:16]
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {name} (key TEXT PRIMARY KEY, dtype TEXT, value BLOB)")
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):  # SQLite limits the number of parameters per query
            part = keys[i : i + 500]
            rows = self.db.execute(
                f"SELECT key, dtype, value FROM {name} WHERE key IN ({','.join('?' * len(part))})", part)
            found.update({k: np.frombuffer(v, dtype=d) for k, d, v in rows})
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        self.hits += len(keys) - sum(k not in found for k in keys)
        self.misses += len(missing)
        if missing:
            text_of = dict(zip(keys, texts))
            new = compute([text_of[k] for k in missing])
            with self.db:
                self.db.executemany(f"INSERT OR REPLACE INTO {name} VALUES (?, ?, ?)",
                                    [(k, str(row.dtype), row.tobytes()) for k, row in zip(missing, new)])
            found.update(zip(missing, new))
        if not keys:
            return np.zeros((0, 0))
        return np.stack([found[k] for k in keys])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "VectorCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
