"""Griffe extension for the API pages: render scorebench's reST-flavoured docstrings as Markdown.

scorebench's docstrings are numpydoc, written with a few reStructuredText constructs that
mkdocstrings (which renders Markdown) would show literally. Before griffe parses a docstring,
this extension rewrites them:

* ``:math:`expr``` becomes ``\\(expr\\)`` and ``.. math::`` blocks become ``\\[ ... \\]``, which
  ``pymdownx.arithmatex`` hands to MathJax;
* cross-reference roles (``:class:`~pkg.mod.Name```, ``:func:``, ``:meth:``, ``:mod:``, ...)
  become inline code (the short name for ``~`` targets), so no link can dangle;
* reST simple tables (``====  ====`` borders) become Markdown tables, and reST definition lists
  (a term, its body indented below it) in free text become Markdown definition lists;
* a paragraph ending in ``::`` (a literal block follows) ends in ``:``.

Only the documentation build uses this file (``mkdocs.yml``: ``extensions``); the library's
docstrings are not changed.
"""

from __future__ import annotations

import re

import griffe

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_XREF_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const|ref|term):`([^`]+)`")
_TITLED = re.compile(r"^(.*?)\s*<([^>]+)>$")
_BORDER = re.compile(r"^(\s*)(=+)((?:\s+=+)+)\s*$")
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")


def _xref(match: re.Match) -> str:
    target = match.group(1).strip()
    titled = _TITLED.match(target)
    if titled:
        return f"`{titled.group(1)}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _math_blocks(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        base, body = m.group(1), [m.group(2).strip()] if m.group(2).strip() else []
        i += 1
        # the directive's content: following lines indented deeper than the directive, or blank
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(base)):
            body.append(lines[i].strip())
            i += 1
        while body and not body[-1]:
            body.pop()
        body = [b for b in body if b] or [""]
        if out and out[-1].strip():
            out.append("")
        out.append(f"{base}\\[")
        out.extend(f"{base}{b}" for b in body)
        out.append(f"{base}\\]")
        out.append("")
    return out


def _cells(line: str, spans: list[tuple[int, int]]) -> list[str]:
    cells = []
    for j, (lo, hi) in enumerate(spans):
        end = None if j == len(spans) - 1 else hi
        cells.append(line[lo:end].strip() if len(line) > lo else "")
    return cells


def _tables(lines: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _BORDER.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        border = lines[i]
        spans = [(s.start(), s.end()) for s in re.finditer(r"=+", border)]
        base = m.group(1)
        rows: list[list[str]] = []
        header: list[str] | None = None
        borders = 1
        i += 1
        while i < len(lines) and borders < 3:
            line = lines[i]
            if _BORDER.match(line):
                borders += 1
                if borders == 2 and rows:
                    header, rows = [" ".join(c) for c in zip(*rows)], []
                i += 1
                continue
            if not line.strip():
                i += 1
                continue
            cells = _cells(line, spans)
            if rows and not cells[0]:
                rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
            else:
                rows.append(cells)
            i += 1
        if header is None:  # a table without a header row: the first row is used as header
            header, rows = (rows[0], rows[1:]) if rows else ([""] * len(spans), [])
        if out and out[-1].strip():
            out.append("")
        out.append(base + "| " + " | ".join(c.replace("|", "\\|") for c in header) + " |")
        out.append(base + "|" + "---|" * len(spans))
        out.extend(base + "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows)
        out.append("")
    return out


_HEADER_RULE = re.compile(r"^\s*-{3,}\s*$")
_FREE_SECTIONS = {"notes", "references", "warnings"}
_BULLET = re.compile(r"^\s*([-*+]|\d+\.)\s")


def _free_text_mask(lines: list[str]) -> list[bool]:
    """True for lines of free text: the summary part and Notes/References/Warnings sections.

    numpydoc's structured sections (Parameters, Returns, Attributes, Examples, ...) are left
    exactly as they are, because griffe's numpy parser reads their indentation.
    """
    mask, free = [], True
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _HEADER_RULE.match(nxt) and not _HEADER_RULE.match(line):
            free = line.strip().lower() in _FREE_SECTIONS
        mask.append(free)
    return mask


def _definition_lists(lines: list[str]) -> list[str]:
    """reST definition lists (a term line, its body indented below) -> Markdown ``def_list``.

    The first body line gets the ``: `` marker; later body lines keep their indentation, which
    ``def_list`` reads as the definition's content (so math blocks and paragraphs inside a
    definition stay inside it instead of turning into code blocks).
    """
    out = list(lines)
    blank_before: set[int] = set()
    mask = _free_text_mask(lines)
    literal_indent = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        ind = _indent(line)
        if literal_indent is not None:
            if ind > literal_indent:
                continue
            literal_indent = None
        if line.rstrip().endswith("::"):
            literal_indent = ind
            continue
        if not mask[i] or ind != 0 or _BULLET.match(line) or line.lstrip().startswith((">>>", ".. ")):
            continue
        # a term follows a blank line or the (indented) body of the previous definition
        prev = lines[i - 1] if i > 0 else ""
        starts_item = not prev.strip() or _indent(prev) >= 2
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if starts_item and nxt.strip() and _indent(nxt) >= 2:
            out[i + 1] = ": " + nxt.strip()
            if prev.strip():
                blank_before.add(i)  # Markdown needs a blank line between definition items
    result: list[str] = []
    for i, line in enumerate(out):
        if i in blank_before:
            result.append("")
        result.append(line)
    return result


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with the reST constructs above rewritten as Markdown."""
    lines = _tables(_math_blocks(_definition_lists(text.split("\n"))))
    text = "\n".join(lines)
    text = _MATH_ROLE.sub(lambda m: f"\\({m.group(1)}\\)", text)
    text = _XREF_ROLE.sub(_xref, text)
    text = re.sub(r"(\S)::\n", r"\1:\n", text)
    return text


class RstToMarkdown(griffe.Extension):
    """Rewrite each object's docstring before it is parsed (see the module docstring)."""

    def on_instance(self, *, node, obj, agent, **kwargs) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and docstring.value:
            docstring.value = rst_to_markdown(docstring.value)
