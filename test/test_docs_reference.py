"""docs/benchmarks.md stays a reference a newcomer reads in minutes, and the benchmarks can
replace its measurement blocks."""

from __future__ import annotations

from pathlib import Path

from vos_ros.benchmark.report import SECTION_TITLES, block_markers

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
MAX_LINES = 250  # history lives in git, not here


def test_benchmarks_page_is_short():
    lines = BENCHMARKS.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"{len(lines)} lines: keep the current numbers, cite git"


def test_each_benchmark_section_holds_one_replaceable_block():
    text = BENCHMARKS.read_text()
    for section in SECTION_TITLES.values():
        begin, end = block_markers(section)
        assert text.count(begin) == 1 and text.count(end) == 1, section
        heading = text.index(f"\n## {section}\n")
        assert heading < text.index(begin) < text.index(end)
        assert "- command: `vos-ros bench" in text[text.index(begin) : text.index(end)]
