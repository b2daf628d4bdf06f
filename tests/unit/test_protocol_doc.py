"""docs/protocol.md is the wire contract in the repo: complete, citable, a superset of the first one.

- it keeps the first contract's section numbers (1-6: request, SSE, WebSocket, state, resume,
  OpenAI), so a citation of one of them means the same thing in either document;
- every citation of a section, in code or docs, names a section that exists;
- it names every error code the code can send, and the first dialect it must keep serving;
- nothing in the repo links to the first contract's place outside the repo (not in a clone).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text()
FIRST_CONTRACT = {1: "request", 2: "SSE", 3: "WebSocket", 4: "state", 5: "Resume", 6: "OpenAI"}
INTERNAL_CODES = {"connection_gone"}  # a record's state, never sent: the client is gone
CITATION = re.compile(r"(?:PROTOCOL(?:\.md)? sections?|protocol\.md (?:section|§)) ?(\d+)(?:-(\d+))?")


def sections() -> dict[int, str]:
    return {int(n): title for n, title in re.findall(r"^## (\d+)\. (.+)$", DOC, re.M)}


SKIP = {".git", ".venv", ".venv-sam", "node_modules", "dist", ".test-build", "test-artifacts", ".aws-sam", ".dev"}
TEXT = {".py", ".ts", ".tsx", ".md", ".yaml", ".toml", ".sh", ".html", ".mjs", ""}


def tracked_files() -> list[Path]:
    """The repo's text files (not what is built or installed into it)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP and d != "__pycache__"]
        found += [Path(folder, name) for name in files if Path(name).suffix in TEXT]
    return found


def test_protocol_doc_keeps_the_first_contracts_section_numbers() -> None:
    found = sections()
    assert sorted(found) == list(range(1, len(found) + 1)), "sections are numbered 1..n with no gap"
    for number, topic in FIRST_CONTRACT.items():
        assert topic.lower() in found[number].lower(), f"section {number} is '{found[number]}', cited as {topic}"


def test_protocol_doc_every_citation_names_an_existing_section() -> None:
    found = sections()
    bad, seen = [], 0
    for path in tracked_files():
        text = path.read_text(errors="ignore")
        for match in CITATION.finditer(text):
            seen += 1
            for number in filter(None, match.groups()):
                if int(number) not in found:
                    bad.append(f"{path.relative_to(ROOT)}: {match.group()}")
    assert seen > 20 and not bad, (seen, bad)


def test_protocol_doc_names_every_error_code_the_code_can_send() -> None:
    codes = set()
    for path in [*(ROOT / "layers" / "core").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        codes |= set(re.findall(r'\bcode = "([a-z_]+)"', path.read_text()))
        codes |= set(re.findall(r'StreamError\([^)]*"([a-z_]+)"\)', path.read_text()))
    missing = sorted(code for code in codes - INTERNAL_CODES if f"`{code}`" not in DOC)
    assert len(codes) > 15 and not missing, missing


def test_protocol_doc_is_a_superset_of_the_first_dialect() -> None:
    assert "superset" in DOC
    for dialect in ('`{"message": "..."}`', "`data.text`", '`{"type":"chat","message":"..."}`', '`{"type":"cancel"}`'):
        assert dialect in DOC
    assert '`{"type":"text","content":"..."}`' in DOC and '`{"type":"done"}`' in DOC


def test_nothing_in_the_repo_links_outside_it() -> None:
    elsewhere = "../" + "shared/"  # spelled so that this file does not match itself
    outside = [str(p.relative_to(ROOT)) for p in tracked_files() if elsewhere in p.read_text(errors="ignore")]
    assert outside == []
