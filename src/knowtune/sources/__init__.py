"""Ingest: every configured source becomes documents (or, for chat data, examples), redacted at the door.

Credential files are left unread; secrets and personal data in what is read are
replaced before anything is written, so no later stage, the tokenizer trainer
or a teacher model ever sees them. Every file left out is a line in
skipped.jsonl with its reason.
"""

from __future__ import annotations

import re
import secrets as _random
from collections import Counter
from pathlib import Path
from typing import Iterator

from ..config import DocsSource, GitSource, HFDatasetSource, JsonlSource, PullRequestsSource, RepoSource
from ..progress import console, track
from ..records import Document, Example, Skipped, write_jsonl
from ..redact import Redactor
from ..settings import IngestSettings
from . import chat_data, docs, git_history, pull_requests, repo
from .gitcmd import SourceError

__all__ = ["run_ingest", "fingerprint", "SourceError"]

PERSON_FIELDS = ("author", "author_email", "committer", "committer_email")
PERSON_LISTS = ("commenters",)
MODULES = {RepoSource: repo, GitSource: git_history, DocsSource: docs, PullRequestsSource: pull_requests,
           JsonlSource: chat_data, HFDatasetSource: chat_data}


def fingerprint(sources: list) -> str:
    """One string that changes exactly when the content ingest would read changes."""
    return "|".join(f"{src.type}:{MODULES[type(src)].fingerprint(src)}" for src in sources)


def run_ingest(settings: IngestSettings, out: Path) -> dict:
    sources = settings.sources
    redactor = Redactor(settings.redact, salt=_salt(out.parent))
    documents: list[Document] = []
    external: list[Example] = []
    skipped: list[Skipped] = []
    for src in sources:
        for item in _read(src, redactor):
            if isinstance(item, Skipped):
                skipped.append(item)
            elif isinstance(item, Document):
                kept = _redact_document(item, redactor)
                (documents.append(kept) if kept else skipped.append(
                    Skipped(item.path, "holds a secret (ingest.redact.secrets: drop)", item.source)))
            else:
                kept = _redact_example(item, redactor)
                (external.append(kept) if kept else skipped.append(
                    Skipped(item.id, "holds a secret (ingest.redact.secrets: drop)", item.metadata.get("source", ""))))
    ids = Counter(d.id for d in documents)
    if any(n > 1 for n in ids.values()):
        dup = next(i for i, n in ids.items() if n > 1)
        raise SourceError(f"sources: two sources produce the same document id {dup}; give them different folders")
    write_jsonl(out / "documents.jsonl", documents)
    write_jsonl(out / "external.jsonl", external)
    write_jsonl(out / "skipped.jsonl", skipped)
    reasons = Counter(_reason_class(s.reason) for s in skipped)
    if reasons:
        console.print(f"ingest: skipped {len(skipped)} (" + ", ".join(f"{n} {r}" for r, n in reasons.most_common())
                      + f"); see {out / 'skipped.jsonl'}")
    return {
        "documents": len(documents),
        "external_examples": len(external),
        "skipped": len(skipped),
        "by_kind": dict(Counter(d.kind for d in documents)),
        "by_source": dict(Counter(d.source for d in documents)),
        "external_by_source": dict(Counter(e.metadata["source"] for e in external)),
        "skipped_by_reason": dict(reasons),
        "characters": sum(len(d.text) for d in documents),
        "redacted": redactor.counts,
        "redacted_by_kind": dict(sum((Counter(c) for c in redactor.counts.values()), Counter())),
        "dropped_for_secrets": redactor.dropped,
    }


def _read(src, redactor: Redactor) -> Iterator[Document | Example | Skipped]:
    module = MODULES[type(src)]
    name = Path(str(src.path)).name
    if isinstance(src, (RepoSource, DocsSource)):
        paths, skipped = module.candidates(src)
        yield from skipped
        readable = []
        for p in paths:
            reason = redactor.credential_reason(p)
            if reason:
                yield Skipped(p, reason, module.label(src))
            else:
                readable.append(p)
        yield from track(module.read(src, readable), f"reading {name}", total=len(readable))
    elif isinstance(src, GitSource):
        yield from track(module.read(src), f"reading history of {name}", total=src.last)
    else:
        yield from track(module.read(src), f"reading {name}")


def _redact_document(doc: Document, redactor: Redactor) -> Document | None:
    text = redactor.text(doc.text, doc.source)
    if text is None:
        return None
    metadata, people = _redact_metadata(doc.metadata, redactor, doc.source)
    # A pull request's text signs comments with logins: the same people get the same pseudonyms there.
    for name, alias in sorted(people.items(), key=lambda kv: -len(kv[0])):
        if name != alias:
            text = re.sub(rf"(?<![\w@.-]){re.escape(name)}(?![\w@-])", lambda _: alias, text)
    doc.text, doc.metadata = text, metadata
    return doc


def _redact_metadata(metadata: dict, redactor: Redactor, source: str) -> tuple[dict, dict[str, str]]:
    out, people = {}, {}
    for key, value in metadata.items():
        if key in PERSON_FIELDS and isinstance(value, str) and value:
            out[key] = people[value] = redactor.person(value, source)
        elif key in PERSON_LISTS and isinstance(value, list):
            out[key] = [people.setdefault(v, redactor.person(v, source)) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            # Titles and URLs can carry an e-mail or a token too; "drop" does not apply to metadata.
            out[key] = redactor.text(value, source) or ""
        else:
            out[key] = value
    return out, people


def _redact_example(example: Example, redactor: Redactor) -> Example | None:
    source = example.metadata.get("source", "")
    for messages in (example.messages, example.prompt, example.chosen, example.rejected):
        for message in messages or []:
            text = redactor.text(message["content"], source)
            if text is None:
                return None
            message["content"] = text
    return example


def _salt(run_root: Path) -> str:
    """A random salt per run directory: pseudonyms stay stable across reruns but cannot be reversed by
    hashing a list of known e-mail addresses, as a fixed salt would allow."""
    path = run_root / "pseudonym.salt"
    if not path.is_file():
        run_root.mkdir(parents=True, exist_ok=True)
        path.write_text(_random.token_hex(16))
    return path.read_text().strip()


def _reason_class(reason: str) -> str:
    return reason.split(" (")[0]
