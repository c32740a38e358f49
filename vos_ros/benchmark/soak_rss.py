"""The soak's resident-memory analysis: growth at equal load, the floor, the trend over time.

A soak (:mod:`vos_ros.benchmark.soak`) samples the node's RSS once a second. Three views of
those samples, each a check in the report:

- **growth**: the median of the last third against the first, per target count (the worst);
- **floor**: the same with the 10th percentile, which a leak raises even when a step lasts
  longer than the sampling period (a sample then lands anywhere inside a step, on top of
  activations hundreds of MiB large);
- **trend**: every sample, whatever its target count, in windows of about five minutes; a line
  fitted to the windows' medians and to their 10th percentiles, from the first window to the
  last. With a slow model only a few dozen samples a third have a given target count, and a
  10th percentile of so few moves by itself; the windows hold every sample.

A fourth view comes from the node itself: its ``/diagnostics`` carry the resident size it read
right after its last heap trim (``resident_after_trim_mib``, every ``memory.trim_period_s``,
between frames), with the targets tracked then. Those readings hold no step's short-lived
buffers, so a leak shows in them without the sampling noise of the others (**after trim**:
growth per target count and a line through windows, as above).

``python -m vos_ros.benchmark.soak_rss SOAK.json`` analyses a soak's ``--json`` record again.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

import numpy as np

# the parts of RSS the report follows, and the sample key of each
RSS_KINDS = {
    "anon": "rss_anon_mib",
    "file": "rss_file_mib",
}
RSS_KIND_NAMES = {
    "anon": "anonymous",
    "file": "file-backed (libraries, mapped files)",
}
# The floor of the RSS samples: what a leak raises even when steps are slower than sampling.
FLOOR_QUANTILE = 0.1
TREND_WINDOW_S = 300.0  # about this long; at least three windows
GROWTH_LIMIT = 0.02


def limit_check(target: str, measured: str, value: float, limit: float) -> dict[str, Any]:
    """One report check: met when ``value <= limit``."""
    return {"target": target, "measured": measured, "value": value, "met": value <= limit}


def warmup_seconds(duration_s: float) -> float:
    """The start of a soak left out of every comparison: a tenth of it, 30 to 60 s."""
    return min(60.0, max(30.0, 0.1 * duration_s))


def steady_samples(samples: list[dict[str, Any]], warmup_s: float) -> list[dict[str, Any]]:
    """The samples after warm-up that have an RSS reading."""
    return [s for s in samples if s["t_s"] >= warmup_s and np.isfinite(s["rss_mib"])]


def rss_analysis(steady: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth, floor, trend and growth per kind of memory of the samples after warm-up
    (nothing below 20 samples)."""
    out: dict[str, Any] = {}
    if len(steady) < 20:
        return out
    out.update(rss_growth(steady))
    floor = rss_growth(steady, quantile=FLOOR_QUANTILE)
    out["rss_floor"] = {
        "after_warmup_mib": floor["rss_after_warmup_mib"],
        "end_mib": floor["rss_end_mib"],
        "growth": floor["rss_growth"],
        "targets": floor.get("rss_growth_targets"),
        "samples": floor["rss_samples"],
    }
    out["rss_max_mib"] = max(s["rss_mib"] for s in steady)
    settled = trim_readings(steady)
    if len(settled) >= 20:
        growth = rss_growth(settled)
        out["rss_after_trim"] = {
            "after_warmup_mib": growth["rss_after_warmup_mib"],
            "end_mib": growth["rss_end_mib"],
            "growth": growth["rss_growth"],
            "targets": growth.get("rss_growth_targets"),
            "samples": growth["rss_samples"],
            "readings": len(settled),
            "trend": rss_trend(rss_windows(settled)),
        }
    windows = rss_windows(steady)
    out["rss_windows"] = windows
    out["rss_trend"] = rss_trend(windows)
    # the same comparison per kind of memory: where a step came from (heap or mapped files)
    kinds = {}
    for kind, key in RSS_KINDS.items():
        having = [s for s in steady if np.isfinite(s.get(key, float("nan")))]
        if len(having) >= 20:
            growth = rss_growth(having, key)
            kinds[kind] = {
                "after_warmup_mib": growth["rss_after_warmup_mib"],
                "end_mib": growth["rss_end_mib"],
                "growth_mib": growth["rss_end_mib"] - growth["rss_after_warmup_mib"],
            }
    if kinds:
        out["rss_by_kind"] = kinds
    return out


def trim_readings(steady: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The node's readings right after its heap trims, one per trim (samples repeat the last
    one until the next), as samples: ``t_s``, ``rss_mib`` and ``targets`` (tracked then)."""
    readings: dict[int, dict[str, Any]] = {}
    for sample in steady:
        trims, value = sample.get("heap_trims"), sample.get("resident_after_trim_mib")
        if trims and trims not in readings and value is not None and np.isfinite(value):
            readings[trims] = {
                "t_s": sample["t_s"],
                "rss_mib": float(value),
                "targets": sample.get("targets_at_trim"),
            }
    return list(readings.values())


def rss_growth(
    steady: list[dict[str, Any]], key: str = "rss_mib", quantile: float = 0.5
) -> dict[str, Any]:
    """RSS growth from the first to the last third of the steady samples, at equal load.

    RSS follows the number of targets (their buffers come and go as the soak adds and removes
    them), so the thirds are compared per target count: the median RSS of the samples with N
    targets in the last third against the same in the first, and the worst N is reported. A
    leak raises every level; a change in the mix of target counts near the end does not.
    ``key`` names the sampled quantity (``rss_mib``, or one kind, e.g. ``rss_anon_mib``).

    ``quantile`` replaces the median: 0.1 compares the *floor*. A model whose step lasts longer
    than the sampling period (SAM 2 on a CPU: seconds) is sampled anywhere inside its steps, on
    top of short-lived activations hundreds of MiB large; a leak raises the floor between
    steps, the activations only the peaks.
    """
    third = max(10, len(steady) // 3)
    early, late = steady[:third], steady[-third:]

    def level_rss(samples: list[dict[str, Any]], targets: Any) -> tuple[float, int]:
        values = [s[key] for s in samples if s.get("targets") == targets]
        return (float(np.quantile(values, quantile)) if values else float("nan")), len(values)

    worst: dict[str, Any] | None = None
    for targets in sorted({s.get("targets") for s in early} - {None}):
        (first, n_first), (last, n_last) = level_rss(early, targets), level_rss(late, targets)
        if min(n_first, n_last) < 3:  # too few samples at this load to compare
            continue
        growth = last / first - 1.0
        if worst is None or growth > worst["rss_growth"]:
            worst = {
                "rss_after_warmup_mib": first,
                "rss_end_mib": last,
                "rss_growth": growth,
                "rss_growth_targets": targets,
                "rss_samples": [n_first, n_last],
            }
    if worst is None:  # no load level in both thirds: compare all samples
        first = float(np.quantile([s[key] for s in early], quantile))
        last = float(np.quantile([s[key] for s in late], quantile))
        worst = {
            "rss_after_warmup_mib": first,
            "rss_end_mib": last,
            "rss_growth": last / first - 1,
            "rss_samples": [len(early), len(late)],
        }
    return worst


def rss_windows(steady: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sample in equal time windows of about :data:`TREND_WINDOW_S` (at least three):
    per window its middle, sample count, mean target count, median and 10th percentile."""
    times = np.array([s["t_s"] for s in steady])
    count = max(3, round((times[-1] - times[0]) / TREND_WINDOW_S))
    edges = np.linspace(times[0], times[-1], count + 1)
    edges[-1] = np.nextafter(edges[-1], np.inf)  # the last sample belongs to the last window
    windows = []
    for lo, hi in itertools.pairwise(edges.tolist()):
        inside = [s for s in steady if lo <= s["t_s"] < hi]
        if not inside:
            continue
        rss = [s["rss_mib"] for s in inside]
        known = [s["targets"] for s in inside if s.get("targets") is not None]
        windows.append(
            {
                "t_s": float((lo + hi) / 2),
                "samples": len(inside),
                "mean_targets": float(np.mean(known)) if known else None,
                "median_mib": float(np.median(rss)),
                "floor_mib": float(np.quantile(rss, FLOOR_QUANTILE)),
            }
        )
    return windows


def rss_trend(windows: list[dict[str, Any]]) -> dict[str, float]:
    """Least-squares lines through the windows' medians and floors: the change each line makes
    from the first window to the last, relative to its value at the first."""
    if len(windows) < 3:
        return {}
    t = np.array([w["t_s"] for w in windows])
    out = {}
    for name in ("median", "floor"):
        values = np.array([w[f"{name}_mib"] for w in windows])
        slope, intercept = np.polyfit(t, values, 1)
        start = slope * t[0] + intercept
        out[f"{name}_growth"] = float(slope * (t[-1] - t[0]) / start)
    out["minutes"] = float((t[-1] - t[0]) / 60.0)
    return out


def rss_checks(analysis: dict[str, Any]) -> list[dict[str, Any]]:
    """The RSS checks on what :func:`rss_analysis` measured (those it could measure)."""
    checks = []
    if "rss_growth" in analysis:
        growth = analysis["rss_growth"]
        where = (
            f" at {analysis['rss_growth_targets']} target(s), first vs last third after "
            "warm-up, worst target count)"
            if "rss_growth_targets" in analysis
            else ", first vs last third after warm-up)"
        )
        measured = (
            f"{growth * 100:+.2f}% ({analysis['rss_after_warmup_mib']:.1f} → "
            f"{analysis['rss_end_mib']:.1f} MiB{where}"
        )
        checks.append(limit_check("RSS grows ≤ 2% after warm-up", measured, growth, GROWTH_LIMIT))
    if "rss_floor" in analysis:
        floor = analysis["rss_floor"]
        where = f" at {floor['targets']} target(s)" if floor["targets"] is not None else ""
        if "samples" in floor:  # a quantile of few samples moves by itself: say how many
            where += ", {} and {} samples".format(*floor["samples"])
        where += ")"
        measured = (
            f"{floor['growth'] * 100:+.2f}% ({floor['after_warmup_mib']:.1f} → "
            f"{floor['end_mib']:.1f} MiB{where}"
        )
        target = "RSS floor (10th percentile) grows ≤ 2% after warm-up"
        checks.append(limit_check(target, measured, floor["growth"], GROWTH_LIMIT))
    settled = analysis.get("rss_after_trim")
    if settled:
        where = f" at {settled['targets']} target(s)" if settled["targets"] is not None else ""
        measured = (
            f"{settled['growth'] * 100:+.2f}% ({settled['after_warmup_mib']:.1f} → "
            f"{settled['end_mib']:.1f} MiB{where}, "
            "{} and {} readings".format(*settled["samples"])
        )
        line = settled["trend"]
        worst = settled["growth"]
        if line:
            measured += f"; line through windows {line['median_growth'] * 100:+.2f}%"
            worst = max(worst, line["median_growth"])
        target = "RSS after the node's heap trims (between frames) grows ≤ 2% after warm-up"
        checks.append(limit_check(target, measured + ")", worst, GROWTH_LIMIT))
    trend = analysis.get("rss_trend")
    if trend:
        windows = analysis["rss_windows"]
        worst = max(trend["median_growth"], trend["floor_growth"])
        counts = [w["samples"] for w in windows]
        measured = (
            f"median {trend['median_growth'] * 100:+.2f}%, "
            f"floor {trend['floor_growth'] * 100:+.2f}% (lines through {len(windows)} windows "
            f"of {min(counts)} to {max(counts)} samples, over {trend['minutes']:.0f} min)"
        )
        target = "RSS trend ≤ 2% over the soak (every sample, whatever its target count)"
        checks.append(limit_check(target, measured, worst, GROWTH_LIMIT))
    return checks


def rss_block_lines(analysis: dict[str, Any]) -> list[str]:
    """The report's lines on RSS by kind and per window."""
    lines = []
    kinds = analysis.get("rss_by_kind")
    if kinds:
        parts = [
            f"{RSS_KIND_NAMES[k]} {v['after_warmup_mib']:.1f} → {v['end_mib']:.1f} MiB "
            f"({v['growth_mib']:+.1f})"
            for k, v in kinds.items()
        ]
        head = "- RSS by kind, first vs last third at the same target count: "
        lines.append(head + "; ".join(parts))
    windows = analysis.get("rss_windows")
    if windows:
        parts = [
            f"{w['t_s'] / 60:.0f} min: {w['median_mib']:.0f} / {w['floor_mib']:.0f}"
            + (f" ({w['mean_targets']:.1f})" if w["mean_targets"] is not None else "")
            for w in windows
        ]
        head = "- RSS per window, median / 10th percentile MiB (mean target count): "
        lines.append(head + "; ".join(parts))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("soak_json", help="a soak's --json record")
    args = parser.parse_args(argv)
    from vos_ros.benchmark.report import targets_list

    with open(args.soak_json, encoding="utf-8") as handle:
        record = json.load(handle)
    warmup_s = warmup_seconds(60.0 * record["minutes"])
    analysis = rss_analysis(steady_samples(record["samples"], warmup_s))
    if not analysis:
        print(f"{args.soak_json}: fewer than 20 samples after warm-up", file=sys.stderr)
        return 1
    print("\n".join(rss_block_lines(analysis)))
    print()
    print(targets_list(rss_checks(analysis)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
