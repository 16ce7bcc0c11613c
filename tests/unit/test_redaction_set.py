"""find_secrets over the labelled set: every secret found with its kind, almost nothing else.

Run with `pytest -s` to see the figures; they are also the assertion message, so a failure
shows them in the -ra summary.
"""

from collections import Counter

import pytest

from fixtures.redaction import CASES, NEGATIVES, POSITIVES
from knowtune.config import RedactConfig, RepoSource
from knowtune.settings import IngestSettings
from knowtune.records import Document, read_jsonl
from knowtune.redact import find_secrets
from knowtune.redact import secrets as secrets_module
from knowtune.sources import run_ingest

# Every kind find_secrets can report: its token detectors and hand rules, the private-key
# blocks, and the assignment rules' kinds.
KINDS = ({kind for _, kind in secrets_module.TOKEN_DETECTORS} | {kind for kind, _, _ in secrets_module.HAND_RULES}
         | {"aws_secret_key", "private_key", "password", "secret", "high_entropy"})


def _short(text: str, n: int = 100) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[:n] + "..."


def score(cases) -> tuple[float, float, str]:
    """(recall, precision, report). A secret counts as found when findings of its kind, and no
    other, cover its span; a finding counts as right when it lies inside a labelled secret (one
    that runs past its secret corrupts the text around it, as a false positive does)."""
    per_kind, found_kind = Counter(), Counter()
    misses, false_positives = [], []
    right = total_findings = 0
    for c in cases:
        found = find_secrets(c.text)
        for kind, start, end in c.secrets:
            per_kind[kind] += 1
            over = [f for f in found if f.start < end and f.end > start]
            covered = set().union(*(range(max(f.start, start), min(f.end, end)) for f in over))
            if len(covered) == end - start and all(f.kind == kind for f in over):
                found_kind[kind] += 1
            else:
                misses.append(f"  MISS {c.name}: {kind} {c.text[start:end][:24]!r}... got "
                              f"{[(f.kind, c.text[f.start:f.end][:24]) for f in over]} in {_short(c.text)!r}")
        for f in found:
            total_findings += 1
            if any(s <= f.start and f.end <= e for _, s, e in c.secrets):
                right += 1
            else:
                false_positives.append(f"  FALSE POSITIVE {c.name}: {f.kind} {c.text[f.start:f.end][:40]!r} "
                                       f"in {_short(c.text)!r}")
    positives = sum(per_kind.values())
    recall = sum(found_kind.values()) / positives
    precision = right / total_findings if total_findings else 1.0
    lines = [f"redaction set: {len(cases)} cases ({len(NEGATIVES)} negatives), {positives} secrets, "
             f"{total_findings} findings",
             f"recall {recall:.4f}  precision {precision:.4f}",
             "per kind (found/planted): " + ", ".join(f"{k} {found_kind[k]}/{n}" for k, n in sorted(per_kind.items())),
             *misses, *false_positives]
    return recall, precision, "\n".join(lines)


def test_the_set_covers_every_kind_and_enough_negatives():
    per_kind = Counter(kind for c in POSITIVES for kind, _, _ in c.secrets)
    assert len(NEGATIVES) >= 200 and not any(c.secrets for c in NEGATIVES)
    assert set(per_kind) == KINDS, set(per_kind) ^ KINDS
    assert min(per_kind.values()) >= 50, per_kind
    for c in POSITIVES:  # labels are spans of their own text
        assert all(0 <= s < e <= len(c.text) for _, s, e in c.secrets), c.name


def test_find_secrets_recall_and_precision_on_the_labelled_set():
    recall, precision, report = score(CASES)
    print("\n" + report)
    assert recall == 1.0 and precision >= 0.99, report


CONFIG_README = """# Redaction

Leave out every document that holds a secret:

```yaml
ingest:
  redact:
    secrets: drop
    pii: pseudonymise
```
"""
CONFIG_CODE = '''class Redactor:
    def text(self, text: str) -> str | None:
        secrets = find_secrets(text)
        if self.cfg.secrets == "drop":
            return None
        if secrets and self.cfg.secrets == "drop":
            return None
        return text
'''


@pytest.mark.parametrize("mode", ["replace", "drop"])
def test_ingest_leaves_config_words_and_comparisons_byte_identical(tmp_path, mode):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text(CONFIG_README)
    (repo / "redactor.py").write_text(CONFIG_CODE)
    run_ingest(IngestSettings(sources=[RepoSource(type="repo", path=repo)], redact=RedactConfig(secrets=mode)),
               tmp_path / "out")
    docs = {d.path: d.text for d in read_jsonl(tmp_path / "out" / "documents.jsonl", Document)}
    assert docs.get("README.md") == CONFIG_README
    assert docs.get("redactor.py") == CONFIG_CODE
