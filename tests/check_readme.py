#!/usr/bin/env python3
"""README.md renders as intended: checked on the HTML of a real CommonMark parser (cmark-gfm,
GitHub's, else cmark), not on our own reading of the markdown.

  python3 tests/check_readme.py README.md      exit 0: fine, 1: a problem (each printed), 77: no parser

Fails when
  - the fences do not pair up (a stray ``` turns the rest of the file into code and back),
  - the HTML has another number of <pre> blocks than the source has fenced blocks,
  - a heading of the source ended up inside a code block,
  - a `convnext <command>` usage block under "Command-line usage" does not sit under a ### heading
    that names that command (each command's section must be a heading, not code or a paragraph).
"""
import html
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def fenced_blocks(lines):
    """The fenced blocks of the source as CommonMark pairs them, and the lines left unclosed."""
    blocks, open_at, opener = [], None, None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if not m:
            continue
        mark = m.group(1)
        if open_at is None:
            open_at, opener = i, mark
        elif mark[0] == opener[0] and len(mark) >= len(opener) and not m.group(2).strip():
            blocks.append((open_at, i))
            open_at = None
    return blocks, open_at


class Outline(HTMLParser):
    """Headings and code blocks of the HTML, in document order."""

    def __init__(self):
        super().__init__()
        self.items = []  # ("h2", text) / ("h3", text) / ("pre", text)
        self._tag, self._text = None, []

    def handle_starttag(self, tag, attrs):
        if tag in ("h1", "h2", "h3", "h4", "pre") and self._tag is None:
            self._tag, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._tag:
            self.items.append((tag, "".join(self._text)))
            self._tag = None

    def handle_data(self, data):
        if self._tag:
            self._text.append(data)


def render(path):
    for tool, args in (("cmark-gfm", ["-e", "table"]), ("cmark", [])):
        exe = shutil.which(tool)
        if exe:
            return subprocess.run([exe, *args, path], check=True, capture_output=True, text=True).stdout
    return None


def main(path):
    text = open(path, encoding="utf-8").read()
    rendered = render(path)
    if rendered is None:
        print("check_readme: no cmark-gfm or cmark (apt-get install cmark-gfm); skipped")
        return 77
    lines = text.split("\n")
    problems = []

    blocks, unclosed = fenced_blocks(lines)
    if unclosed is not None:
        problems.append(f"{path}:{unclosed + 1}: this fence is never closed (a stray ``` above or here?)")

    outline = Outline()
    outline.feed(rendered)
    pres = [t for tag, t in outline.items if tag == "pre"]
    if len(pres) != len(blocks):
        problems.append(f"{path}: {len(blocks)} fenced blocks in the source but {len(pres)} code blocks in the HTML")

    # The source's headings: lines like "## x" outside its fenced blocks (a "# comment" inside a
    # shell block is code, not a heading). One of them inside a rendered code block was swallowed.
    in_fence = set()
    for a, b in blocks:
        in_fence.update(range(a, b + 1))
    if unclosed is not None:
        in_fence.update(range(unclosed, len(lines)))
    headings = {l.strip() for i, l in enumerate(lines) if i not in in_fence and re.match(r"^#{1,4} \S", l)}
    for tag, body in outline.items:
        if tag != "pre":
            continue
        for line in body.split("\n"):
            if line.strip() in headings:
                problems.append(f"{path}: the heading '{line}' is inside a code block")

    # Every usage block ("convnext CMD ...") of the Command-line usage section under an h3 naming CMD.
    section, last_heading = None, None
    usage_blocks = 0
    for tag, body in outline.items:
        if tag in ("h1", "h2"):
            section, last_heading = body.strip(), None
        elif tag in ("h3", "h4"):
            last_heading = (tag, body)
        elif tag == "pre" and section == "Command-line usage":
            m = re.match(r"\s*convnext ([a-z][a-z-]*)", body)
            if not m:
                continue
            usage_blocks += 1
            cmd = m.group(1)
            if last_heading is None or last_heading[0] != "h3" or f"convnext {cmd}" not in last_heading[1]:
                where = "no heading" if last_heading is None else f"<{last_heading[0]}>{html.escape(last_heading[1])}"
                problems.append(f"{path}: the usage block of `convnext {cmd}` sits under {where}, not a ### heading naming it")
    if "Command-line usage" not in [b.strip() for t, b in outline.items if t == "h2"]:
        problems.append(f"{path}: no '## Command-line usage' heading in the HTML")
    elif usage_blocks == 0:
        problems.append(f"{path}: no `convnext <command>` usage block under '## Command-line usage'")

    for p in problems:
        print(p)
    if not problems:
        print(f"{path}: renders cleanly ({len(blocks)} code blocks, {usage_blocks} command usage blocks under ### headings)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
