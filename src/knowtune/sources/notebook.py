"""Jupyter notebooks as code: the jupytext "percent" text of their cells, outputs left out.

Written by hand rather than with jupytext or nbformat: the conversion is a
loop over a JSON list, and outputs (plots as base64 images, tables, tracebacks)
are exactly what must not reach training, so none of their machinery is needed.
"""

from __future__ import annotations

import json

# Line comments by kernel language; markdown cells become comments so the text stays valid code.
_COMMENT = {
    "javascript": "//", "typescript": "//", "java": "//", "scala": "//", "kotlin": "//", "c": "//", "cpp": "//",
    "c++": "//", "csharp": "//", "c#": "//", "go": "//", "rust": "//", "swift": "//", "sql": "--",
    "matlab": "%", "octave": "%",
}
_ALIASES = {"python3": "python", "python2": "python", "ipython": "python", "c++": "cpp", "c#": "csharp"}


class NotebookError(ValueError):
    """Not a notebook knowtune can read."""


def to_percent(data: bytes | str) -> tuple[str, str]:
    """(text in jupytext percent format, programming language) of a notebook file's content."""
    try:
        nb = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NotebookError("unreadable notebook") from None
    except RecursionError:
        # JSON nested past the decoder's recursion limit (in a cell's metadata or outputs, say): no notebook
        # tool writes that, so the file is skipped rather than read some other way.
        raise NotebookError("notebook nested too deeply to parse") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        # nbformat 3 kept cells under "worksheets"; notebooks that old are not worth a second reader.
        raise NotebookError("unreadable notebook")
    language = language_of(nb.get("metadata"))
    comment = _COMMENT.get(language, "#")
    parts = []
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            continue
        source = _source(cell.get("source"))
        kind = cell.get("cell_type")
        if kind == "code":
            parts.append(f"{comment} %%\n{source}".rstrip("\n"))
        elif kind in ("markdown", "raw"):
            body = "\n".join(f"{comment} {line}".rstrip() for line in source.splitlines())
            parts.append(f"{comment} %% [{kind}]\n{body}".rstrip("\n"))
    return "\n\n".join(parts) + "\n", language


def language_of(metadata: object) -> str:
    """The notebook's language from its kernel metadata; python when it does not say."""
    if not isinstance(metadata, dict):
        return "python"
    for key, field in (("kernelspec", "language"), ("language_info", "name")):
        section = metadata.get(key)
        value = section.get(field) if isinstance(section, dict) else None
        if isinstance(value, str) and value.strip():
            name = value.strip().lower()
            return _ALIASES.get(name, name)
    return "python"


def _source(source: object) -> str:
    # nbformat stores a cell's source as one string or as a list of lines (each keeping its "\n").
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""
