"""Question–answer pairs from Python source, read with the standard `ast` module.

A docstring is the author's own answer to "what does this do?", and a
signature is the answer to "what does it take?"; both are facts a model
fine-tuned on the code should be able to state by name.
"""

from __future__ import annotations

import ast
import inspect
import re

from ..records import Document
from .qa_pair import QAPair, char_offsets, does_question, one_line, signature_pair

Function = ast.FunctionDef | ast.AsyncFunctionDef


def python_pairs(doc: Document) -> tuple[list[QAPair], str | None]:
    try:
        tree = ast.parse(doc.text)
    except (SyntaxError, ValueError):  # ValueError: null bytes in the source
        return [], "python file does not parse"
    where = _Positions(doc.text)
    pairs = []
    module_doc = _docstring(tree, where)
    if module_doc:
        answer, span = module_doc
        pairs.append(QAPair(f"What is {doc.path} for?", answer, doc.path, "docstring", span))
    pairs += _body_pairs(tree.body, [], doc, where)
    return pairs, None


def _body_pairs(body: list[ast.stmt], scope: list[str], doc: Document, where: _Positions) -> list[QAPair]:
    # Only definitions directly in a module or class: a function nested in a function
    # is an implementation detail nobody outside it can call.
    pairs = []
    for node in body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        name = ".".join([*scope, node.name])
        docstring = _docstring(node, where)
        if docstring:
            pairs.append(QAPair(does_question(name, doc.path), docstring[0], name, "docstring", docstring[1]))
        if isinstance(node, ast.ClassDef):
            pairs += _body_pairs(node.body, [*scope, node.name], doc, where)
        elif _worth_a_signature(node, docstring is not None):
            params = _params(node, doc.text, in_class=bool(scope))
            returns = _source(doc.text, node.returns) if node.returns else None
            pairs.append(signature_pair(name, doc.path, params, returns, _header_span(node, where)))
    return pairs


def _worth_a_signature(node: Function, documented: bool) -> bool:
    # __eq__, __repr__ and friends have signatures fixed by the language; __init__'s is the class's.
    if node.name.startswith("__") and node.name.endswith("__"):
        return node.name == "__init__"
    return documented or not node.name.startswith("_")


def _params(node: Function, text: str, in_class: bool) -> list[str]:
    a = node.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + a.defaults
    params = list(zip(positional, defaults))
    n_posonly = len(a.posonlyargs)
    if in_class and positional and positional[0].arg in ("self", "cls"):
        params, n_posonly = params[1:], max(0, n_posonly - 1)
    out = [_param(arg, default, text) for arg, default in params]
    if n_posonly:
        out.insert(n_posonly, "/")
    if a.vararg:
        out.append("*" + _param(a.vararg, None, text))
    elif a.kwonlyargs:
        out.append("*")
    out += [_param(arg, default, text) for arg, default in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        out.append("**" + _param(a.kwarg, None, text))
    return out


def _param(arg: ast.arg, default: ast.expr | None, text: str) -> str:
    # PEP 8 spacing: `a: int = 3` but `a=3`.
    out = arg.arg
    if arg.annotation is not None:
        out += f": {_source(text, arg.annotation)}"
    if default is not None:
        out += (" = " if arg.annotation is not None else "=") + _source(text, default)
    return out


def _source(text: str, node: ast.expr) -> str:
    """The expression as written (quotes, spacing), falling back to a rebuilt one."""
    return one_line(ast.get_source_segment(text, node) or ast.unparse(node))


def _docstring(node: ast.Module | ast.ClassDef | Function, where: _Positions) -> tuple[str, tuple[int, int]] | None:
    first = node.body[0] if node.body else None
    value = first.value if isinstance(first, ast.Expr) else None
    if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
        return None
    cleaned = inspect.cleandoc(value.value)
    if not cleaned:
        return None
    return cleaned, (where.at(first.lineno, first.col_offset), where.at(first.end_lineno, first.end_col_offset))


def _header_span(node: Function, where: _Positions) -> tuple[int, int]:
    # From `def` (decorators left out) to where the body starts: the signature's place in the file.
    body = node.body[0]
    return where.at(node.lineno, node.col_offset), where.at(body.lineno, body.col_offset)


class _Positions:
    """ast reports (line, UTF-8 byte column); chunks and spans count characters from the start."""

    def __init__(self, text: str):
        data = text.encode("utf-8", "surrogatepass")
        self._line_starts = [0] + [m.end() for m in re.finditer(rb"\r\n|\r|\n", data)]
        self._char = char_offsets(text)

    def at(self, lineno: int, col: int) -> int:
        return self._char(self._line_starts[lineno - 1] + col)
