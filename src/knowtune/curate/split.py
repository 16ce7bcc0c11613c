"""The split of DESIGN.md: whole documents held out for val and test, and a
`knowledge` set of questions held out from documents that are trained.

Assignment hashes ids with the seed, so a document keeps its split when the
corpus grows, and reruns give the same split.
"""

from __future__ import annotations

import hashlib

from ..records import Example

QUESTION_KINDS = ("instruction", "qa", "preference")


def unit(seed: int, *parts: str) -> float:
    """A number in [0, 1) fixed by the seed and the parts."""
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def document_splits(doc_ids: list[str], val_share: float, test_share: float, seed: int) -> dict[str, str]:
    u = {d: unit(seed, "split", d) for d in doc_ids}
    splits = {d: "val" if x < val_share else "test" if x < val_share + test_share else "train" for d, x in u.items()}
    # A small corpus can leave a held-out set empty by chance; give it the train
    # document nearest to it, as long as training keeps most documents.
    for name, share in (("val", val_share), ("test", test_share)):
        train = sorted((x, d) for d, x in u.items() if splits[d] == "train")
        if share > 0 and name not in splits.values() and len(train) >= 3:
            splits[train[0][1]] = name
    return splits


def assign(examples: list[Example], val_share: float, test_share: float, knowledge_share: float, seed: int,
           paraphrase_share: float = 0.0) -> None:
    """Set `split` on every example in place.

    An example that carries one file's part of a change (a diff hunk, or a question about why the file
    changed: metadata "follows") goes where that file went when the file is held out, so a held-out file's
    hunks are never trained through the commits and pull requests that touched it.

    Facts, not strings, are held out: every wording of a fact (metadata "fact") goes to `knowledge` together,
    while the raw text that states it stays trained. Of the facts that train, `paraphrase_share` lose their
    spare wording to the `paraphrase` set: a trained fact asked in words the model never saw.
    """
    doc_ids = sorted({e.document_id for e in examples})
    splits = document_splits(doc_ids, val_share, test_share, seed)
    held = HeldFiles(e for e in examples if e.metadata.get("doc_kind") != "change" and splits[e.document_id] != "train")
    for e in examples:
        e.split = splits[e.document_id]
        follows = e.metadata.get("follows")
        if follows and (where := held.split_of(follows, splits)):
            e.split = where
        elif e.split == "train" and e.kind in QUESTION_KINDS:
            fact = e.metadata.get("fact")
            if unit(seed, "knowledge", fact or e.id) < knowledge_share:
                e.split = "knowledge"
            elif fact and e.metadata.get("spare") and unit(seed, "paraphrase", fact) < paraphrase_share:
                e.split = "paraphrase"


class HeldFiles:
    """The held-out files and pages by path, found by a change's path for them.

    A change names a file by its path in the repository; a docs source names a page by its path in the docs
    folder (`guide.md` for `docs/guide.md`). Paths match when equal, or when one ends with the other after a
    slash: holding out one page too many is safe, training a held-out one is not.
    """

    def __init__(self, examples):
        self.by_name: dict[str, dict[str, str]] = {}  # file name -> path -> document id
        for e in examples:
            path = e.metadata.get("path")
            if path:
                self.by_name.setdefault(path.rsplit("/", 1)[-1], {})[path] = e.document_id

    def split_of(self, path: str, splits: dict[str, str]) -> str | None:
        found = {splits[doc] for held, doc in self.by_name.get(path.rsplit("/", 1)[-1], {}).items()
                 if held == path or held.endswith("/" + path) or path.endswith("/" + held)}
        return "test" if "test" in found else "val" if found else None
