"""The README stays a page a newcomer reads in five minutes, and the documentation's links
hold: the README is under 15 KB, opens with the two set-up commands (the test command the
one CI runs), names the other everyday `run.sh` commands, and every relative link in the
README, SECURITY.md and docs/*.md points at a file that exists and, for a Markdown file,
at a heading it has. Reads files only; what the documents say is not checked here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_BYTES = 15_000
APP_COMMAND = "./run.sh app"
TEST_COMMAND = "./run.sh test"
DOCUMENTS = sorted([README, ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def code_blocks(text: str) -> list[str]:
    return [block.split("\n", 1)[1].rsplit("```", 1)[0] for block in FENCE.findall(text)]


def commands(block: str) -> list[str]:
    """The block's lines without their trailing comments."""
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its rendered text in lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link reads as its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(markdown: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", markdown.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(document: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", document.read_text()))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def test_the_readme_is_under_15_kb():
    size = README.stat().st_size
    assert size < MAX_README_BYTES, (
        f"README.md is {size} bytes; move details into docs/ to stay under {MAX_README_BYTES}"
    )


def test_the_readme_opens_with_the_two_set_up_commands():
    text = README.read_text()
    first, second = code_blocks(text)[:2]
    assert commands(first) == [APP_COMMAND]
    assert commands(second) == [TEST_COMMAND]
    # Nothing but the title and the quick-start heading before them.
    headings_before = HEADING.findall(text[: text.index("```")])
    assert headings_before[1:] == ["Quick start"], headings_before


def test_ci_runs_the_readmes_test_command():
    ci_commands = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert TEST_COMMAND in ci_commands


@pytest.mark.parametrize("command", ["test-slow", "lint"])
def test_the_readme_names_the_other_everyday_commands(command):
    assert f"./run.sh {command}" in README.read_text()
    assert re.search(rf"^\s*{re.escape(command)}\)", (ROOT / "run.sh").read_text(), re.M)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_point_at_what_exists(document):
    broken = []
    for target in relative_links(document):
        path_part, _, anchor = target.partition("#")
        linked = (document.parent / path_part).resolve() if path_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading with that anchor in {linked.name}")
    assert not broken, f"{document.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_check_sees_a_broken_link(tmp_path):
    """The check above is not vacuous: a missing file and a missing heading are caught."""
    (tmp_path / "other.md").write_text("# Title\n\n## A heading: `with code`\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-heading-with-code) [gone](missing.md) [bad](other.md#nowhere)\n"
        "`[in code](ignored.md)` [web](https://example.com/x)\n"
    )
    assert relative_links(page) == [
        "other.md#a-heading-with-code",
        "missing.md",
        "other.md#nowhere",
    ]
    assert "a-heading-with-code" in anchors(tmp_path / "other.md")
    assert "nowhere" not in anchors(tmp_path / "other.md")
