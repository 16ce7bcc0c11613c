"""Question–answer pairs from JavaScript, TypeScript, Go and Java, read with tree-sitter.

The same two facts as for Python: what a documented symbol does (its doc
comment) and what it takes (its parameters and return type as written).
tree-sitter parses each language with one API and tolerates broken files,
where a hand-written regex would misread nested generics and default values.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import tree_sitter
import tree_sitter_go
import tree_sitter_java
import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Node

from ..records import Document
from .qa_pair import QAPair, char_offsets, does_question, one_line, signature_pair

GRAMMARS = {
    "javascript": tree_sitter_javascript.language, "typescript": tree_sitter_typescript.language_typescript,
    "tsx": tree_sitter_typescript.language_tsx, "go": tree_sitter_go.language, "java": tree_sitter_java.language,
}
# Declarations that take arguments, and declarations that only get a "what does it do" question
# (their members are visited with the type's name in front).
FUNCTIONS = {
    "function_declaration", "generator_function_declaration", "method_definition", "method_signature",
    "abstract_method_signature", "function_signature", "method_declaration", "constructor_declaration",
}
TYPES = {
    "class_declaration", "abstract_class_declaration", "interface_declaration", "type_alias_declaration",
    "enum_declaration", "type_spec", "type_alias", "record_declaration", "annotation_type_declaration",
}
# Nodes whose children are declarations: a file, a class or interface body, an export, Go's `type (...)`.
CONTAINERS = {
    "program", "source_file", "class_body", "interface_body", "enum_body", "enum_body_declarations",
    "export_statement", "type_declaration", "ambient_declaration",
}
COMMENTS = {"comment", "block_comment", "line_comment"}
GO_DIRECTIVE = re.compile(r"^//[a-z]+:\S")  # //go:generate, //nolint:... are not documentation


@lru_cache(maxsize=None)
def _parser(grammar: str) -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(GRAMMARS[grammar]()))


def treesitter_pairs(doc: Document, language: str) -> list[QAPair]:
    grammar = "tsx" if language == "typescript" and doc.path.endswith(".tsx") else language
    src = doc.text.encode("utf-8", "surrogatepass")
    ctx = _Context(doc.path, language, src, char_offsets(doc.text))
    root = _parser(grammar).parse(src).root_node
    pairs = []
    if language == "go":
        package = next((c for c in root.children if c.type == "package_clause"), None)
        comment = package and _doc_comment(package, ctx)
        if comment:  # Go's package comment says what the file is for, like a module docstring
            pairs.append(QAPair(f"What is {doc.path} for?", comment[0], doc.path, "docstring", comment[1]))
    return pairs + _visit(root, [], ctx)


@dataclass(slots=True)
class _Context:
    path: str
    language: str
    src: bytes  # tree-sitter works in UTF-8 bytes; spans are reported in characters
    to_char: Callable[[int], int]

    def text(self, node: Node) -> str:
        return self.src[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass")

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.to_char(start), self.to_char(end)


def _visit(node: Node, scope: list[str], ctx: _Context) -> list[QAPair]:
    pairs = []
    for child in node.named_children:
        if child.type in CONTAINERS:
            pairs += _visit(child, scope, ctx)
        elif child.type in FUNCTIONS:
            pairs += _function(child, child, None, scope, ctx)
        elif child.type in ("lexical_declaration", "variable_declaration"):
            for declarator in child.named_children:
                value = declarator.child_by_field_name("value")
                if value is not None and value.type in ("arrow_function", "function_expression", "function"):
                    pairs += _function(value, child, declarator.child_by_field_name("name"), scope, ctx)
        elif child.type in TYPES:
            pairs += _type(child, scope, ctx)
    return pairs


def _type(node: Node, scope: list[str], ctx: _Context) -> list[QAPair]:
    name_node = node.child_by_field_name("name")
    if name_node is None:
        return []
    name = ".".join([*scope, ctx.text(name_node)])
    pairs = []
    comment = _doc_comment(_anchor(node), ctx)
    if comment:
        pairs.append(QAPair(does_question(name, ctx.path), comment[0], name, "docstring", comment[1]))
    body = node.child_by_field_name("body")
    if body is not None:
        pairs += _visit(body, [*scope, ctx.text(name_node)], ctx)
    return pairs


def _function(node: Node, anchor: Node, name_node: Node | None, scope: list[str], ctx: _Context) -> list[QAPair]:
    name_node = name_node or node.child_by_field_name("name")
    if name_node is None:
        return []  # `export default function () {}` has no name a question could use
    short = ctx.text(name_node)
    receiver = _receiver(node, ctx)
    name = ".".join([*scope, receiver, short] if receiver else [*scope, short])
    pairs = []
    comment = _doc_comment(_anchor(anchor), ctx)
    if comment:
        pairs.append(QAPair(does_question(name, ctx.path), comment[0], name, "docstring", comment[1]))
    params_node = node.child_by_field_name("parameters") or node.child_by_field_name("parameter")
    returns_node = node.child_by_field_name("return_type") or node.child_by_field_name("result")
    if returns_node is None and node.type == "method_declaration" and ctx.language == "java":
        returns_node = node.child_by_field_name("type")
    # A signature tree-sitter could not read is better left out than misquoted; errors in the body don't matter.
    broken = any(n is not None and n.has_error for n in (params_node, returns_node))
    if not broken and (comment or not _private(node, short, ctx)):
        returns = ctx.text(returns_node).lstrip(":").strip() if returns_node is not None else None
        end = max(n.end_byte for n in (name_node, params_node, returns_node) if n is not None)
        pairs.append(signature_pair(name, ctx.path, _params(params_node, ctx), one_line(returns) if returns else None,
                                    ctx.span(anchor.start_byte, end)))
    return pairs


def _params(params: Node | None, ctx: _Context) -> list[str]:
    if params is None:
        return []
    if params.type == "identifier":  # `x => x`: one parameter without parentheses
        return [ctx.text(params)]
    out = []
    for p in params.named_children:
        if p.type in COMMENTS or p.type == "receiver_parameter":
            continue
        text = one_line(ctx.text(p))
        if text == "this" or text.startswith("this:"):  # TypeScript's `this` parameter, like Python's self
            continue
        out.append(text)
    return out


def _receiver(node: Node, ctx: _Context) -> str | None:
    """Go: the type a method belongs to, `*Lamp` and `Stack[T]` both named by their type."""
    receiver = node.child_by_field_name("receiver") if node.type == "method_declaration" else None
    if receiver is None:
        return None
    stack = list(receiver.named_children)
    while stack:
        n = stack.pop(0)
        if n.type == "type_identifier":
            return ctx.text(n)
        stack += [c for c in n.named_children if c.type != "identifier"]
    return None


def _private(node: Node, name: str, ctx: _Context) -> bool:
    # Undocumented internals are not what people ask about; each language marks them its own way.
    if ctx.language == "go":
        return not name[:1].isupper()
    if ctx.language == "java":
        modifiers = next((c for c in node.children if c.type == "modifiers"), None)
        return modifiers is not None and any(c.type == "private" for c in modifiers.children)
    if name.startswith(("_", "#")):
        return True
    return any(c.type == "accessibility_modifier" and ctx.text(c) == "private" for c in node.children)


def _anchor(node: Node) -> Node:
    """The node a doc comment sits in front of: `export function f` is commented before `export`,
    and Go's `type Lamp struct` before `type`, not before the spec inside it."""
    parent = node.parent
    if parent is not None and parent.type == "export_statement":
        return parent
    if parent is not None and parent.type == "type_declaration" and parent.named_child_count == 1:
        return parent
    return node


def _doc_comment(anchor: Node, ctx: _Context) -> tuple[str, tuple[int, int]] | None:
    """The comment directly above `anchor` (no blank line between), cleaned of its markers."""
    comments: list[Node] = []
    row = anchor.start_point.row
    node = anchor.prev_sibling
    while node is not None and node.type in COMMENTS and node.end_point.row >= row - 1 and _starts_line(node, ctx):
        block = ctx.text(node).startswith("/*")
        if block and comments:
            break  # a /* */ block above a run of // lines is a comment of its own
        comments.insert(0, node)
        if block or ctx.language != "go":
            break  # JS, TS, Java: one /** */ block; Go: a run of // lines (or one block)
        row, node = node.start_point.row, node.prev_sibling
    if not comments:
        return None
    raw = [ctx.text(c) for c in comments]
    if ctx.language == "go":
        text = _clean_block(raw[-1]) if raw[-1].startswith("/*") else _clean_lines(raw)
    elif raw[0].startswith("/**") and raw[0] != "/**/":
        text = _clean_block(raw[0])
    else:
        return None  # a plain // or /* */ comment is a note to the next reader, not documentation
    if not text:
        return None
    return text, ctx.span(comments[0].start_byte, comments[-1].end_byte)


def _starts_line(node: Node, ctx: _Context) -> bool:
    """False for a comment trailing code on its line: it belongs to that code, not to what follows."""
    line_start = ctx.src.rfind(b"\n", 0, node.start_byte) + 1
    return not ctx.src[line_start:node.start_byte].strip()


def _clean_block(raw: str) -> str:
    body = raw[2:-2] if raw.endswith("*/") else raw[2:]
    body = body[1:] if body.startswith("*") else body  # the second * of /**
    lines = []
    for line in body.splitlines():
        stripped = line.lstrip()
        if stripped.startswith("*"):
            stripped = stripped[1:]
            line = stripped[1:] if stripped.startswith(" ") else stripped
        lines.append(line.rstrip())
    return inspect.cleandoc("\n".join(lines))


def _clean_lines(raw: list[str]) -> str:
    lines = [r[2:] for r in raw if not GO_DIRECTIVE.match(r)]
    return inspect.cleandoc("\n".join((line[1:] if line.startswith(" ") else line).rstrip() for line in lines))
