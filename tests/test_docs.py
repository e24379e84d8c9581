"""The documentation: the README stays short, the docs/ pages build with MkDocs in strict mode,
and every link of the README and the pages leads to a file and a heading that exist."""

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# [text](target "title") and ![alt](target): text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def without_code(text: str) -> str:
    """``text`` with fenced blocks removed and inline code spans reduced to their content's place."""
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub (and MkDocs, for these headings) gives a heading: its text without
    Markdown, lower-case, punctuation but hyphens and underscores dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"`([^`]*)`", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated slug gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for _, heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of the Markdown links and images of ``path`` that stay in the repository."""
    text = without_code(path.read_text())
    targets = INLINE_LINK.findall(text) + REFERENCE_DEFINITION.findall(text)
    return [target for target in targets if not SCHEME.match(target) and not target.startswith("//")]


def test_the_readme_is_under_250_lines() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")  # as `wc -l` counts them
    assert lines < README_MAX_LINES, f"README.md has {lines} lines; move sections to docs/"


def test_the_pages_have_links_to_check() -> None:
    """Guards the link test against a pattern that silently finds nothing."""
    assert "docs/configuration.md" in relative_links(ROOT / "README.md")
    assert any(target.endswith(".png") for target in relative_links(DOCS / "dashboard.md"))
    assert "two-policies-zeuss-and-lsts" in anchors(DOCS / "policies.md")
    assert slug("`bso simulate`: trace-driven simulation") == "bso-simulate-trace-driven-simulation"
    assert slug("HTTP API (Zeus-compatible)") == "http-api-zeus-compatible"


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        where = f"{page.relative_to(ROOT)}: {target}"
        if not destination.is_relative_to(ROOT) or not destination.exists():
            broken.append(f"{where} (no such file)")
        elif page.parent == DOCS and not destination.is_relative_to(DOCS):
            broken.append(f"{where} (MkDocs cannot link outside docs/: write the path as code)")
        elif anchor and destination.suffix != ".md":
            broken.append(f"{where} (an anchor into a file that is not Markdown)")
        elif anchor and anchor not in anchors(destination):
            broken.append(f"{where} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def test_mkdocs_builds_the_pages_in_strict_mode(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed: python -m pip install -e '.[test]' installs it")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = {path.name for path in (tmp_path / "site").glob("*.html")}
    assert {f"{page.stem}.html" for page in DOCS.glob("*.md")} <= built
