"""Redaction that ingest applies before any other stage sees a text.

Secrets become `<SECRET:kind>` (or the document is dropped); e-mail addresses and phone
numbers become stable pseudonyms, so "who did what" survives while who they are does not.
What was found is counted by source and kind; the values themselves are kept nowhere.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from typing import TYPE_CHECKING

import pathspec

from ..config import ConfigError
from .finding import Finding, allowed
from .pii import EMAIL, find_pii, normal_email, normal_phone
from .secrets import find_secrets

if TYPE_CHECKING:
    from ..config import RedactConfig

__all__ = ["Finding", "Redactor", "find_pii", "find_secrets"]


class Redactor:
    """Redacts texts and personal metadata by one RedactConfig, counting what it redacted."""

    def __init__(self, cfg: RedactConfig, salt: str = "knowtune"):
        self.cfg = cfg
        self.salt = salt
        self.allow = [_compile(p) for p in cfg.allow]
        self._credential_globs = list(cfg.credential_files) + list(cfg.extra_credential_files)
        self._credential_spec = pathspec.GitIgnoreSpec.from_lines(self._credential_globs)
        self.counts: dict[str, dict[str, int]] = {}
        self.dropped = 0

    def text(self, text: str, source: str) -> str | None:
        """`text` with secrets and personal data replaced; None when it holds a secret and the
        config says to drop such documents."""
        secrets = find_secrets(text, self.allow)
        for f in secrets:
            self._count(source, f.kind)
        if secrets and self.cfg.secrets == "drop":
            self.dropped += 1
            return None
        pii = [] if self.cfg.pii == "keep" else [
            f for f in find_pii(text)
            if not allowed(text[f.start:f.end], self.allow) and not _overlaps(f, secrets)]
        if not secrets and not pii:
            return text
        parts, pos = [], 0
        for f in sorted(secrets + pii, key=lambda f: f.start):
            parts += [text[pos:f.start], self._replacement(f, text[f.start:f.end], source)]
            pos = f.end
        parts.append(text[pos:])
        return "".join(parts)

    def person(self, value: str, source: str) -> str:
        """A metadata field that is personal data itself (an author's name or e-mail, a login)."""
        if self.cfg.pii == "keep" or not value.strip():
            return value
        if EMAIL.fullmatch(value.strip()):
            self._count(source, "email")
            return "<PII:email>" if self.cfg.pii == "replace" else self._email_pseudonym(value)
        self._count(source, "person")
        if self.cfg.pii == "replace":
            return "<PII:person>"
        return f"person-{self._hash('person', ' '.join(value.split()).casefold())}"

    def credential_reason(self, path: str) -> str | None:
        """Why a file is not read at all: its name says it holds credentials (.env, *.pem, id_rsa)."""
        result = self._credential_spec.check_file(path)
        if not result.include:
            return None
        return f"credential file (matches {self._credential_globs[result.index]})"

    def _replacement(self, f: Finding, value: str, source: str) -> str:
        if f.kind not in ("email", "phone"):
            return f"<SECRET:{f.kind}>"
        self._count(source, f.kind)
        if self.cfg.pii == "replace":
            return f"<PII:{f.kind}>"
        if f.kind == "email":
            return self._email_pseudonym(value)
        return f"<PHONE:{self._hash('phone', normal_phone(value))}>"

    def _email_pseudonym(self, value: str) -> str:
        return f"person-{self._hash('email', normal_email(value))}@example.invalid"

    def _hash(self, kind: str, normalised: str) -> str:
        # Salted, so a pseudonym cannot be reversed by hashing a list of known addresses
        # without the salt; the kind keeps a name and an address that are equal strings apart.
        return hashlib.sha256(f"{self.salt}\x1f{kind}\x1f{normalised}".encode("utf-8")).hexdigest()[:8]

    def _count(self, source: str, kind: str) -> None:
        per_source = self.counts.setdefault(source, {})
        per_source[kind] = per_source.get(kind, 0) + 1


def _compile(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"ingest.redact.allow: {pattern!r} is not a regular expression ({e})") from None


def _overlaps(f: Finding, others: list[Finding]) -> bool:
    # others are sorted and do not overlap, so their ends are sorted too
    i = bisect.bisect_right(others, f.start, key=lambda o: o.end)
    return i < len(others) and others[i].start < f.end
