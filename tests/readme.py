"""The README's code blocks, for tests that run its snippets exactly as they are written."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """(language, text) of every code block in the README's section ``heading`` (a heading's
    text without its ``#``s), up to the next heading of the same or a higher level."""
    blocks: list[tuple[str, str]] = []
    level = 0  # of the section once found
    fence: str | None = None  # the open block's language
    lines: list[str] = []
    for line in README.read_text().splitlines(keepends=True):
        if fence is not None:
            if line.rstrip() == "```":
                blocks.append((fence, "".join(lines)))
                fence = None
            else:
                lines.append(line)
        elif line.startswith("```"):
            if level:
                fence, lines = line[3:].strip(), []
        elif line.startswith("#"):
            depth = len(line) - len(line.lstrip("#"))
            if level and depth <= level:
                break
            if line[depth:].strip() == heading:
                level = depth
    if not level:
        raise AssertionError(f"no section {heading!r} in the README")
    return blocks


def readme_block(heading: str, language: str, marker: str = "") -> str:
    """The first ``language`` block holding ``marker`` in the README's section ``heading``."""
    for block_language, text in readme_blocks(heading):
        if block_language == language and marker in text:
            return text
    raise AssertionError(f"no {language} block with {marker!r} in the README's section {heading!r}")


def on_loopback(snippet: str, *, gateway: int | str, upstream: int | str) -> str:
    """A README snippet with its example addresses (the gateway on 127.0.0.1:25441, the app
    on 127.0.0.1:8080) replaced by the test's ports."""
    return (snippet.replace("127.0.0.1:25441", f"127.0.0.1:{gateway}")
            .replace("127.0.0.1:8080", f"127.0.0.1:{upstream}"))
