"""Pull requests exported from GitHub (`gh api`): one document per PR with its discussion, files and diff.

Each item is the REST API's pull-request object plus the lists `gh api` saves
beside it: "comments" (issue comments), "review_comments" (comments on lines
of the diff) and "files" (with their patches); or the same four wrapped as
{"pull_request": {...}, "comments": [...], ...}. A file is a JSON array, one
object per line (.jsonl), or a folder of such files.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from ..config import PullRequestsSource
from ..records import Document, Skipped, stable_id
from .gitcmd import SourceError

SUFFIXES = (".json", ".jsonl")


def label(src: PullRequestsSource) -> str:
    return f"pull_requests:{src.path.name}"


def fingerprint(src: PullRequestsSource) -> str:
    h = hashlib.sha256(f"{src.max_patch_chars}".encode())
    for rel, path in _files(src):
        h.update(f"{rel}\x1f{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()[:16]


def read(src: PullRequestsSource) -> Iterator[Document | Skipped]:
    source = label(src)
    seen: dict[int, str] = {}
    for rel, path in _files(src):
        if not rel.endswith(SUFFIXES):
            yield Skipped(rel, "not a .json or .jsonl export", source)
            continue
        for where, item in _items(rel, path):
            if isinstance(item, Skipped):
                yield Skipped(item.path, item.reason, source)
                continue
            pr, reason = _unwrap(item)
            if reason:
                yield Skipped(where, f"{where}: {reason}", source)
            elif pr["number"] in seen:
                yield Skipped(where, f"{where}: PR #{pr['number']} was already read from {seen[pr['number']]}", source)
            else:
                seen[pr["number"]] = where
                try:
                    yield document(pr, source, src.max_patch_chars)
                except (TypeError, AttributeError, ValueError) as err:
                    # A field of an unexpected type deep in a hand-edited export: skip the PR, keep reading.
                    yield Skipped(where, f"{where}: malformed pull request ({err})", source)


def _files(src: PullRequestsSource) -> list[tuple[str, Path]]:
    if src.path.is_file():
        return [(src.path.name, src.path)]
    if not src.path.is_dir():
        raise SourceError(f"sources: pull_requests path {src.path} does not exist")
    return sorted((p.relative_to(src.path).as_posix(), p) for p in src.path.rglob("*") if p.is_file())


def _items(rel: str, path: Path) -> Iterator[tuple[str, Any]]:
    """(where, item) for every item of one export file; where names the file and the item's place in it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        yield rel, Skipped(rel, "unreadable encoding (not UTF-8)")
        return
    except OSError as err:  # gone or unreadable since it was listed
        yield rel, Skipped(rel, f"unreadable ({err.strerror or type(err).__name__})")
        return
    if rel.endswith(".jsonl"):
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield f"{rel}:{lineno}", json.loads(line)
                except json.JSONDecodeError as err:
                    yield rel, Skipped(f"{rel}:{lineno}", f"{rel}:{lineno}: not valid JSON ({err.msg})")
                except RecursionError:  # nested past the decoder's limit: no export looks like that
                    yield rel, Skipped(f"{rel}:{lineno}", f"{rel}:{lineno}: JSON nested too deeply to parse")
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        yield rel, Skipped(rel, f"not valid JSON ({err.msg} at line {err.lineno})")
        return
    except RecursionError:
        yield rel, Skipped(rel, "JSON nested too deeply to parse")
        return
    for index, item in enumerate(data if isinstance(data, list) else [data]):
        yield f"{rel}[{index}]", item


def _unwrap(item: Any) -> tuple[dict, str | None]:
    """The pull request with its three lists, or a reason it is not one."""
    if not isinstance(item, dict):
        return {}, "not a JSON object"
    if isinstance(item.get("pull_request"), dict):
        item = {**item["pull_request"], **{k: item[k] for k in ("comments", "review_comments", "files") if k in item}}
    if not isinstance(item.get("number"), int) or isinstance(item.get("number"), bool):
        return {}, "not a pull request (no 'number')"
    if not isinstance(item.get("title"), str) or not item["title"].strip():
        return {}, f"PR #{item['number']} has no 'title'"
    for key in ("created_at", "updated_at", "closed_at", "merged_at"):
        if not isinstance(item.get(key), str):
            item[key] = None
    for key in ("comments", "review_comments", "files"):
        # In the API's own object "comments" and "review_comments" are counts; only the saved lists are content.
        value = item.get(key)
        item[key] = [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []
    return item, None


def document(pr: dict, source: str, max_patch_chars: int) -> Document:
    number = pr["number"]
    merged = bool(pr.get("merged") or pr.get("merged_at"))
    state = "merged" if merged else (pr.get("state") or "open")
    comments = [c for c in pr["comments"] if _body(c)]
    reviews = [c for c in pr["review_comments"] if _body(c)]
    files = [f for f in pr["files"] if isinstance(f.get("filename"), str)]
    commenters = list(dict.fromkeys(_login(c) for c in comments + reviews))
    return Document(
        id=stable_id(source, f"pr/{number}"), source=source, path=f"pr/{number}", kind="change",
        text=render(pr, state, comments, reviews, files, max_patch_chars),
        metadata={
            "number": number, "title": pr["title"].strip(), "state": state, "merged": merged,
            "created_at": pr.get("created_at"), "merged_at": pr.get("merged_at"), "url": pr.get("html_url"),
            "author": _login(pr), "commenters": commenters, "files": [f["filename"] for f in files],
            "date": (pr.get("merged_at") or pr.get("closed_at") or pr.get("created_at") or "")[:10] or None,
            "base": _ref(pr, "base"), "head": _ref(pr, "head"),
        },
    )


def render(pr: dict, state: str, comments: list, reviews: list, files: list, limit: int) -> str:
    when = [f"opened {_day(pr.get('created_at'))}"] if pr.get("created_at") else []
    if state == "merged" and pr.get("merged_at"):
        when.append(f"merged {_day(pr['merged_at'])}")
    elif state == "closed" and pr.get("closed_at"):
        when.append(f"closed {_day(pr['closed_at'])}")
    shown = state + (" (draft)" if pr.get("draft") and state == "open" else "")
    status = f"State: {shown}" + (f" ({', '.join(when)})" if when else "")
    lines = [f"PR #{pr['number']}: {pr['title'].strip()}", status]
    if pr.get("html_url"):
        lines.append(f"URL: {pr['html_url']}")
    if _ref(pr, "head") or _ref(pr, "base"):
        lines.append(f"Branch: {_ref(pr, 'head') or '?'} -> {_ref(pr, 'base') or '?'}")
    lines += ["", _body(pr) or "(no description)"]
    if comments:
        lines += ["", "Comments:"] + [_item(f"{_login(c)}: {_body(c)}") for c in comments]
    if reviews:
        lines += ["", "Review comments:"] + [_item(f"{_login(c)} on {_where(c)}: {_body(c)}") for c in reviews]
    if files:
        lines += ["", "Files changed:"] + [f"  {f['filename']} ({_change(f)})" for f in files]
    # Each file's patch under git's own header, so a PR's diff splits per file as a commit's does
    # (examples/diff_sections.py): the part of a held-out file follows it out of training.
    diff = "".join(f"diff --git a/{f['filename']} b/{f['filename']}\n{f['patch'].rstrip()}\n" for f in files
                   if isinstance(f.get("patch"), str))
    if diff:
        if len(diff) > limit:
            cut = diff.rfind("\n", 0, limit) + 1 or limit
            diff = diff[:cut] + f"[... diff truncated: {len(diff) - cut} more characters ...]\n"
        lines += ["", "Diff:", diff.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _body(obj: dict) -> str:
    body = obj.get("body")
    if not isinstance(body, str):
        return ""
    # Template guidance left in <!-- --> comments is not what the author wrote.
    body = re.sub(r"<!--.*?-->", "", body.replace("\r\n", "\n"), flags=re.S)
    return re.sub(r"\n{3,}", "\n\n", body).strip()


def _login(obj: dict) -> str:
    user = obj.get("user")
    # GitHub shows "ghost" for a deleted account, whose objects carry user: null.
    return user["login"] if isinstance(user, dict) and isinstance(user.get("login"), str) else "ghost"


def _ref(pr: dict, side: str) -> str | None:
    end = pr.get(side)
    return end.get("ref") if isinstance(end, dict) else None


def _where(comment: dict) -> str:
    line = comment.get("line") or comment.get("original_line")
    return f"{comment.get('path') or '?'}" + (f" line {line}" if line else "")


def _change(f: dict) -> str:
    status = f.get("status") or "changed"
    if status == "renamed" and f.get("previous_filename"):
        status = f"renamed from {f['previous_filename']}"
    counts = f"+{f.get('additions', 0)} -{f.get('deletions', 0)}"
    return f"{status}, {counts}" + ("" if isinstance(f.get("patch"), str) else ", no patch: binary or too large")


def _item(text: str) -> str:
    # One list item per comment; its further lines are indented under it.
    return "- " + text.replace("\n", "\n  ")


def _day(stamp: str) -> str:
    return stamp[:10]
