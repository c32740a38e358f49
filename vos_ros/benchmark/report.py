"""Markdown for docs/benchmarks.md: tables of benchmark records, written into a section.

Each benchmark writes one block (command, machine, date, load, table, targets) into its section of
the document (``## Engine``, ``## Node``, ``## Soak``) between two HTML comments, replacing the
block of the run before: the document holds the current numbers and git holds the history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vos_ros.benchmark.stats import fmt_spread

SECTION_TITLES = {
    "engine": "Engine",
    "node": "Node",
    "soak": "Soak",
}


def block_markers(section: str) -> tuple[str, str]:
    """The HTML comments around a section's measurement block (invisible when rendered)."""
    return f"<!-- vos-ros bench: {section} -->", f"<!-- end vos-ros bench: {section} -->"


def write_into_section(path: Path, section: str, block: str) -> None:
    """Put ``block`` into the ``## {section}`` section of ``path``: in place of the block between
    the section's markers (:func:`block_markers`) when there is one, else at the end of the
    section (the section is created at the end of the document when missing)."""
    path = Path(path)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    begin, end_marker = block_markers(section)
    marked = f"{begin}\n{block.strip(chr(10))}\n{end_marker}\n"
    if begin in text and end_marker in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end_marker, 1)[1].lstrip("\n")
        path.write_text(head + marked + ("\n" + tail if tail else ""))
        return
    lines = text.splitlines(keepends=True)
    heading = f"## {section}"
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        path.write_text(text.rstrip("\n") + "\n\n" + heading + "\n\n" + marked)
        return
    stop = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before = "".join(lines[:stop]).rstrip("\n") + "\n\n"
    after = "".join(lines[stop:])
    path.write_text(before + marked + ("\n" + after if after else ""))


def run_header(meta: dict[str, Any]) -> str:
    """The lines naming how a run was made: command, machine, date, load, model."""
    machine = meta["machine"]
    load = meta.get("load_average") or {}
    model = meta.get("model") or {}
    model_text = model.get("path", "")
    if model.get("name"):
        model_text = (
            f"{model['path']} ({model['name']} {model.get('version', '')}, checkpoint step "
            f"{model.get('checkpoint_step')}, encoder sha256 "
            f"{str(model.get('encoder_sha256'))[:12]})"
        )
    lines = [
        f"### {meta['title']} — {meta['date']}",
        "",
        f"- command: `{meta['command']}`",
        f"- machine: {machine['label']} ({machine['cpu']}, {machine['cores']} cores"
        + (f", GPU {machine['gpu']}" if machine.get("gpu") else ", no GPU")
        + ")",
        f"- load average (1/5/15 min) before: {_load(load.get('before'))}, after: "
        f"{_load(load.get('after'))}",
    ]
    if model_text:
        lines.append(f"- model: {model_text}")
    if "omp_wait_policy" in meta:
        lines.append(
            f"- CPU threads: {meta.get('threads') or 'library default'}; OMP_WAIT_POLICY "
            f"(torch CPU): {meta['omp_wait_policy'] or 'unset (OpenMP busy-waits)'}"
        )
    for note in meta.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines)


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "n/a"


def engine_table(records: list[dict[str, Any]]) -> str:
    """One row per engine case: medians with [p5–p95] in ms, fps from the median."""
    header = (
        "| backend | input | targets | fps | end-to-end ms | preprocess | flow | encoder | "
        "memory | decoder | postprocess | msg in | msg out + serialize | non-network | "
        "memory full: before → after (drift) | load 1 min |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in records:
        if "error" in r:
            rows.append(f"| {r['backend']} | – | – | not run: {r['error']} |" + " |" * 12)
            continue
        st = r["stages_ms"]

        def med(name: str, st: dict = st) -> str:
            return f"{st[name]['median']:.2f}" if name in st else "–"

        msg_out = (
            f"{st['msg_out']['median'] + st['serialize']['median']:.2f}" if "msg_out" in st else "–"
        )
        mem = r.get("memory")
        if mem and mem["full_at_step"] is not None and mem["after_full_ms"]["n"]:
            drift = mem.get("after_full_drift")
            mem_text = (
                f"{mem['before_full_ms']['median']:.1f} → {mem['after_full_ms']['median']:.1f}"
                + (f" ({drift * 100:+.0f}%)" if drift is not None else "")
            )
        elif mem:
            mem_text = "not full"
        else:
            mem_text = "n/a"
        load = r.get("load_average", {}).get("after") or ["?"]
        rows.append(
            f"| {r['backend']} | {r['size']} | {r['targets']} | {r['fps_from_median']:.1f} | "
            f"{fmt_spread(r['end_to_end_ms'])} | {med('preprocess')} | {med('flow')} | "
            f"{med('encoder')} | {med('memory')} | {med('decoder')} | {med('postprocess')} | "
            f"{med('msg_in')} | {msg_out} | {fmt_spread(r['non_network_ms'], 2)} | {mem_text} | "
            f"{load[0]} |"
        )
    return header + "\n".join(rows)


def targets_list(checks: list[dict[str, Any]]) -> str:
    """``- [x] target: measured (limit)`` lines."""
    lines = []
    for check in checks:
        mark = "n/a" if check.get("met") is None else ("met" if check["met"] else "NOT met")
        lines.append(f"- {check['target']}: {check['measured']} — **{mark}**")
    return "\n".join(lines)
