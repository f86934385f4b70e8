"""Griffe extension: make probssm's reST-flavoured numpy docstrings render as Markdown.

probssm's docstrings are numpy style with a few reStructuredText constructs inside them. Griffe's
numpy parser keeps those as text, so before parsing this extension rewrites each docstring:

* ``:math:`expr``` becomes ``$expr$`` (inline maths, typeset by pymdownx.arithmatex + MathJax);
* a ``.. math::`` directive and its indented block become a ``$$ ... $$`` display block (wrapped
  in ``aligned`` when it uses ``&`` or ``\\\\``);
* Sphinx cross-reference roles (``:func:``, ``:class:``, ``:mod:``, ...) become code spans;
* a free-text paragraph left at the end of a ``Parameters`` / ``Attributes`` section (numpydoc has
  no place for it; griffe would read its first word as a parameter name) is moved above the
  section, into the description;
* reST literals (````x````) and roles in the type of a ``name : type`` item lose their markup,
  since the type column is shown verbatim; a type that would parse as a Python tuple, call or
  string (``DataFrame, (T, n)``, ``"a" (default) or "b"``) gets one no-break space, which keeps
  griffe from re-rendering it as code (``(DataFrame, (T, n))``); maths written into a type
  (``array (n, n), :math:`F```) moves to the start of the item's description.

The source files are not changed; only the text that mkdocstrings renders. Loaded from
``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

_INLINE_MATH = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|exc|obj|const):`~?([^`]+)`")
_MATH_DIRECTIVE = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<rest>.*)$")


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def _display_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _MATH_DIRECTIVE.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group("indent")
        base = len(indent)
        body = [match.group("rest")] if match.group("rest").strip() else []
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent_of(lines[i]) > base):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        while body and not body[0].strip():
            body.pop(0)
        inner = min((_indent_of(b) for b in body if b.strip()), default=0)
        body = [b[inner:] if b.strip() else "" for b in body]
        expr = "\n".join(body)
        if "&" in expr or "\\\\" in expr:
            body = ["\\begin{aligned}", *body, "\\end{aligned}"]
        if out and out[-1].strip():
            out.append("")
        out += [indent + "$$", *(indent + b if b else "" for b in body), indent + "$$"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out)


_ITEM_SECTIONS = ("Parameters", "Other Parameters", "Attributes")
_ITEM_LINE = re.compile(r"^\*{0,2}\w+(\s*,\s*\*{0,2}\w+)*\s*(:.*)?$")


def _stranded_paragraphs(text: str) -> str:
    """Move free-text paragraphs out of the end of item sections (see the module docstring)."""
    lines = text.split("\n")
    i = 0
    while i < len(lines) - 1:
        is_header = (
            lines[i].strip() in _ITEM_SECTIONS
            and _indent_of(lines[i]) == 0
            and set(lines[i + 1].strip()) == {"-"}
        )
        if not is_header:
            i += 1
            continue
        start = i
        j = i + 2
        moved: list[str] = []
        while j < len(lines):
            line = lines[j]
            if j + 1 < len(lines) and line.strip() and set(lines[j + 1].strip()) == {"-"}:
                break  # the next section's header
            prev_blank = not lines[j - 1].strip()
            if prev_blank and line.strip() and _indent_of(line) == 0 and not _ITEM_LINE.match(line):
                k = j
                while k < len(lines) and lines[k].strip():
                    k += 1
                moved += lines[j:k] + [""]
                del lines[j:k]
                continue
            j += 1
        if moved:
            lines[start:start] = moved
            i = start + len(moved) + 2
        else:
            i = j
    return "\n".join(lines)


_TYPED_SECTIONS = _ITEM_SECTIONS + ("Returns", "Yields", "Receives", "Raises", "Warns")
_TYPED_ITEM = re.compile(r"^(?P<names>\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)*)\s+:\s+(?P<type>.+)$")
_LITERAL = re.compile(r"``([^`]+)``")


def _reads_as_code(text: str) -> bool:
    """Whether griffe would re-render ``text`` as a Python expression other than a plain type:
    a tuple (``DataFrame, (T, n)``), a call (``"a" (default) or "b"``) or a string constant."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return any(
        isinstance(node, (ast.Tuple, ast.Call, ast.Starred))
        or (isinstance(node, ast.Constant) and isinstance(node.value, str))
        for node in ast.walk(tree)
    )


def _item_types(text: str) -> str:
    """Clean the types of ``name : type`` items (see the module docstring)."""
    lines = text.split("\n")
    section = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"}:
            section = line.strip()
            continue
        if section in _TYPED_SECTIONS and _indent_of(line) == 0:
            match = _TYPED_ITEM.match(line)
            if match:
                kind = _ROLE.sub(r"\1", _LITERAL.sub(r"\1", match.group("type")))
                extra = ""
                if ":math:" in kind:  # maths in the type: move it (and what follows) to the text
                    cut = kind.find(":math:")
                    comma = kind.rfind(", ", 0, cut)
                    cut = comma if comma >= 0 else cut
                    kind, extra = kind[:cut].rstrip(", "), kind[cut:].lstrip(", ")
                if _reads_as_code(kind) and " " in kind:
                    kind = kind.replace(" ", "\u00a0", 1)
                lines[i] = f"{match.group('names')} : {kind}" if kind else match.group("names")
                if extra:
                    lines[i] += "\n    " + extra
    return "\n".join(lines)


def rst_to_markdown(text: str) -> str:
    """Rewrite the reST constructs probssm's docstrings use into Markdown + arithmatex."""
    if ":" not in text and ".." not in text:
        return text
    text = _display_blocks(text)
    text = _stranded_paragraphs(text)
    text = _item_types(text)
    text = _INLINE_MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    return _ROLE.sub(lambda m: f"`{m.group(1)}`", text)


class RstToMarkdown(griffe.Extension):
    """Rewrites every docstring once, when its object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:  # noqa: D102
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and docstring.value:
            docstring.value = rst_to_markdown(docstring.value)
