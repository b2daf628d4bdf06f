"""docs/clients.md runs: every snippet of the sections above its marker (curl, the OpenAI and
Anthropic SDKs for Python, LangChain's ChatOpenAI) is extracted from the markdown and run as a
user would run it (``bash`` for shell, the project's Python for Python) against the app under
uvicorn (the local Function URL) with API keys on, as deployed, and what it prints must match
the ``text`` block under it: exactly, or, where the block has ``…``, line by line (blank lines
aside) with ``…`` standing for anything (a line that is only ``…`` for any lines)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.protection import ProtectionTables, protected_env
from tests.fakes.local_stack import LocalAws, function_stack

DOC = Path(__file__).resolve().parents[2] / "docs" / "clients.md"
MARKER = "<!-- The sections below are JavaScript, run by tests/browser/test_clients_doc.py"
OURS = ("curl", "OpenAI SDK (Python)", "Anthropic SDK (Python)", "LangChain ChatOpenAI")
STREAMS = "tokenrelay-streams-clients-doc"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.S | re.M)


@dataclass(frozen=True)
class Snippet:
    section: str
    number: int  # in its section
    language: str
    code: str
    expected: str

    def __str__(self) -> str:
        return f"{self.section} #{self.number}"


def snippets() -> list[Snippet]:
    """Each code block of our sections with the ``text`` block that follows it."""
    text = DOC.read_text()
    assert MARKER in text, "the marker that separates the tested sections is gone"
    out = []
    for part in re.split(r"^## ", text.split(MARKER)[0], flags=re.M)[1:]:
        section = part.split("\n", 1)[0].strip()
        blocks = FENCE.findall(part)
        runnable = [(i, lang, code) for i, (lang, code) in enumerate(blocks) if lang in ("bash", "python")]
        for n, (i, lang, code) in enumerate(runnable, 1):
            assert i + 1 < len(blocks) and blocks[i + 1][0] == "text", f"{section} #{n}: no output block after it"
            out.append(Snippet(section, n, lang, code, blocks[i + 1][1]))
    return out


SNIPPETS = snippets()


def test_every_section_of_ours_has_tested_snippets() -> None:
    assert {s.section for s in SNIPPETS} == set(OURS)
    assert len(SNIPPETS) >= 7


@pytest.fixture(scope="module")
def served(aws: LocalAws) -> Iterator[dict[str, str]]:
    tables = ProtectionTables.create(aws.endpoint, STREAMS)
    env = {**protected_env(STREAMS), "ECHO_DELAY_MS": "300", "METRICS_ENABLED": "false"}
    with function_stack(aws, env, name="clients-doc") as stack:
        token, _ = asyncio.run(tables.key())
        yield {"TOKENRELAY_URL": stack.http, "TOKENRELAY_API_KEY": token}
        stack.assert_no_access_denied()


def matches(expected: str, actual: str) -> bool:
    if "…" not in expected:
        return actual.strip() == expected.strip()
    lines = [line for line in actual.splitlines() if line.strip()]
    at, gap = 0, True
    for want in expected.strip().splitlines():
        if not want.strip():
            continue  # blank lines (between SSE events) are shown for the reader, not compared
        if want.strip() == "…":
            gap = True
            continue
        pattern = re.compile(".*?".join(re.escape(piece) for piece in want.split("…")) + r"\Z")
        while at < len(lines) and not pattern.match(lines[at]):
            if not gap:
                return False
            at += 1
        if at == len(lines):
            return False
        at, gap = at + 1, False
    return True


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_snippet_prints_what_the_doc_shows(served: dict[str, str], snippet: Snippet, tmp_path: Path) -> None:
    command = ["bash", "-euo", "pipefail", "-c", snippet.code] if snippet.language == "bash" else [sys.executable]
    done = subprocess.run(
        command,
        input=snippet.code if snippet.language == "python" else None,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **served},
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert matches(snippet.expected, done.stdout), f"printed:\n{done.stdout}\nthe doc shows:\n{snippet.expected}"


@pytest.mark.parametrize(
    ("expected", "actual", "ok"),
    [
        ("a\nb", "a\nb\n", True),
        ("a\nb", "a\nc", False),
        ("x: …\n…\nz", "x: 1\ny\ny\nz", True),
        ("x: …\nz", "x: 1\ny\nz", False),  # without a … line, lines follow each other
        ("…\nb…d", "a\nbcd", True),
        ("a\n\n…\n\nb", "a\n\nx\n\nb", True),
    ],
)
def test_output_matching(expected: str, actual: str, ok: bool) -> None:
    assert matches(expected, actual) is ok
