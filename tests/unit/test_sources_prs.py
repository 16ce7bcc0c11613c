import json
from pathlib import Path

import pytest

from knowtune.config import PullRequestsSource
from knowtune.records import Document, Skipped
from knowtune.sources import SourceError, pull_requests

EXPORT = Path(__file__).parents[1] / "fixtures" / "pull_requests"


def read(path: Path, **settings) -> tuple[dict[str, Document], list[Skipped]]:
    items = list(pull_requests.read(PullRequestsSource(type="pull_requests", path=path, **settings)))
    return ({d.path: d for d in items if isinstance(d, Document)}, [s for s in items if isinstance(s, Skipped)])


def test_a_folder_of_exports_gives_one_change_document_per_pr():
    docs, skipped = read(EXPORT)
    assert skipped == []
    assert sorted(docs) == ["pr/12", "pr/13", "pr/14", "pr/15"]  # three from export.json, one from more.jsonl
    assert all(d.kind == "change" and d.source == "pull_requests:pull_requests" for d in docs.values())


def test_merged_pr_text_has_discussion_files_and_diff():
    text = read(EXPORT / "export.json")[0]["pr/12"].text
    assert text.startswith(
        "PR #12: Add storm oil factor\n"
        "State: merged (opened 2026-09-01, merged 2026-09-03)\n"
        "URL: https://github.com/harbour-office/lanterna/pull/12\n"
        "Branch: storm-oil -> main\n\n"
        "A storm night burns half as much oil again"
    )
    assert "Describe how you tested" not in text and "\r" not in text  # template comment and CRLF gone
    assert "Comments:\n- tom-harbour: The harbour office saw the same thing" in text
    assert ("Review comments:\n- tom-harbour on lanterna/weather.py line 3: Is 1.5 from the supplier's table"
            " or from our own log?\n  Either is fine") in text
    assert ("Files changed:\n  lanterna/weather.py (modified, +5 -1)\n"
            "  docs/storm-chart.png (added, +0 -0, no patch") in text
    assert "Diff:\ndiff --git a/lanterna/weather.py b/lanterna/weather.py\n@@ -1,6 +1,10 @@\n" in text
    assert "+STORM_OIL_FACTOR = 1.5" in text
    assert "b/docs/storm-chart.png" not in text  # a binary file has no patch


def test_metadata():
    docs, _ = read(EXPORT)
    meta = docs["pr/12"].metadata
    assert meta == {
        "number": 12, "title": "Add storm oil factor", "state": "merged", "merged": True,
        "created_at": "2026-09-01T08:15:02Z", "merged_at": "2026-09-03T16:40:10Z",
        "url": "https://github.com/harbour-office/lanterna/pull/12", "author": "ada-keeper",
        "commenters": ["tom-harbour"], "files": ["lanterna/weather.py", "docs/storm-chart.png"],
        "date": "2026-09-03", "base": "main", "head": "storm-oil",
    }
    closed, open_ = docs["pr/13"], docs["pr/14"]
    assert closed.metadata["state"] == "closed" and closed.metadata["merged"] is False
    assert "State: closed (opened 2026-09-05, closed 2026-09-09)" in closed.text
    assert open_.metadata["state"] == "open" and open_.metadata["commenters"] == []
    assert "State: open (opened 2026-09-10)\n" in open_.text and "\n(no description)\n" in open_.text
    assert "Comments:" not in open_.text


def test_wrapped_shape_from_jsonl():
    docs, _ = read(EXPORT / "more.jsonl")
    doc = docs["pr/15"]
    assert doc.metadata["author"] == "brann-k" and doc.metadata["merged"] is True
    assert "- ada-keeper: Thanks, this saves the chalkboard." in doc.text
    assert "lanterna/schedule.py (added, +14 -0)" in doc.text


def test_diff_is_truncated_with_a_marker():
    doc = read(EXPORT / "export.json", max_patch_chars=80)[0]["pr/12"]
    diff = doc.text.split("\nDiff:\n", 1)[1]
    assert "[... diff truncated:" in diff and len(diff) < 200


def test_malformed_items_are_skipped_naming_file_and_index(tmp_path):
    good = json.loads((EXPORT / "export.json").read_text())[2]
    (tmp_path / "prs.json").write_text(json.dumps([{"title": "no number"}, {"number": 7}, "a string", good, good]))
    odd = {"number": 9, "title": "Odd types", "created_at": 5, "user": "x", "comments": 2,
           "files": [{"filename": "a.bin", "patch": None}, {"status": "added"}]}
    (tmp_path / "lines.jsonl").write_text('{"number": 8, "title": "Fine"}\n{not json\n' + json.dumps(odd) + '\n[1]\n')
    (tmp_path / "broken.json").write_text("[{")
    (tmp_path / "notes.md").write_text("how the export was made")
    docs, skipped = read(tmp_path)
    assert sorted(docs) == ["pr/14", "pr/8", "pr/9"]
    reasons = {s.path: s.reason for s in skipped}
    assert reasons == {
        "broken.json": reasons["broken.json"],
        "lines.jsonl:2": reasons["lines.jsonl:2"],
        "lines.jsonl:4": "lines.jsonl:4: not a JSON object",
        "notes.md": "not a .json or .jsonl export",
        "prs.json[0]": "prs.json[0]: not a pull request (no 'number')",
        "prs.json[1]": "prs.json[1]: PR #7 has no 'title'",
        "prs.json[2]": "prs.json[2]: not a JSON object",
        "prs.json[4]": "prs.json[4]: PR #14 was already read from prs.json[3]",
    }
    assert reasons["broken.json"].startswith("not valid JSON")
    assert reasons["lines.jsonl:2"].startswith("lines.jsonl:2: not valid JSON")
    assert docs["pr/8"].text.startswith("PR #8: Fine\nState: open\n\n(no description)\n")
    assert docs["pr/9"].metadata["author"] == "ghost" and docs["pr/9"].metadata["files"] == ["a.bin"]


def test_fingerprint_follows_content(tmp_path):
    path = tmp_path / "export.json"
    path.write_text((EXPORT / "export.json").read_text())
    src = PullRequestsSource(type="pull_requests", path=path)
    before = pull_requests.fingerprint(src)
    path.touch()
    assert pull_requests.fingerprint(src) == before
    path.write_text(path.read_text().replace("Add storm oil factor", "Add the storm oil factor"))
    assert pull_requests.fingerprint(src) != before


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        read(tmp_path / "nope.json")
