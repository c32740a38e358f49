"""Smoke test of ``vos-ros bench``: it runs on tiny inputs and writes valid JSON and Markdown.

Not a timing test: nothing here compares a time with a limit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vos_ros.benchmark.report import block_markers, write_into_section
from vos_ros.benchmark.stats import summarize
from vos_ros.cli import main

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = REPO_ROOT / "models" / "protonet-s"
TINY = ["--sizes", "128x96", "--targets", "1,2", "--frames", "3", "--warmup", "1"]


def _run_bench(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bench.json"
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Engine\n\n## Node\n\nnode text\n")
    code = main(["bench", *args, *TINY, "--clip-length", "4", "--json", str(out),
                 "--write-md", str(md)])  # fmt: skip
    assert code == 0
    document = json.loads(out.read_text())
    text = md.read_text()
    # the table went into the Engine section, before the Node section
    assert text.index("### Engine (in-process)") < text.index("## Node")
    assert "node text" in text
    return document


def test_bench_flow_fallback_writes_json_and_markdown(tmp_path):
    document = _run_bench(tmp_path, "--model", "flow")
    assert document["command"].startswith("vos-ros bench")
    assert document["machine"]["cores"] >= 1
    cases = document["cases"]
    assert [(c["backend"], c["size"], c["targets"]) for c in cases] == [
        ("flow", "128x96", 1),
        ("flow", "128x96", 2),
    ]
    for case in cases:
        assert case["frames"] == 3
        assert case["end_to_end_ms"]["n"] == 3
        assert case["end_to_end_ms"]["median"] > 0
        for stage in ("preprocess", "flow", "postprocess"):
            assert case["stages_ms"][stage]["n"] == 3


@pytest.mark.skipif(not (MODEL / "model.yaml").is_file(), reason="models/protonet-s not present")
def test_bench_onnxruntime_reports_memory_and_targets(tmp_path):
    document = _run_bench(tmp_path, "--backends", "onnxruntime", "--model", str(MODEL))
    cases = document["cases"]
    assert all(c["backend"] == "onnxruntime" for c in cases)
    assert all("memory" in c for c in cases)
    assert all(c["stages_ms"]["encoder"]["median"] > 0 for c in cases)
    assert document["model"]["name"]


def test_bench_rejects_a_bad_size():
    with pytest.raises(SystemExit):
        main(["bench", "--sizes", "854by480"])


def test_a_run_replaces_the_block_of_the_run_before_in_its_section(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# T\n\n## Engine\n\nprose\n\n## Soak\n\nsoak\n")
    write_into_section(doc, "Engine", "first run")
    write_into_section(doc, "Quality", "scores")
    text = doc.read_text()
    assert text.index("prose") < text.index("first run") < text.index("## Soak")
    begin, end = block_markers("Quality")
    assert text.rstrip().endswith(f"## Quality\n\n{begin}\nscores\n{end}")

    write_into_section(doc, "Engine", "second run")
    text = doc.read_text()
    assert "first run" not in text and text.count("second run") == 1
    assert text.index("prose") < text.index("second run") < text.index("## Soak")
    assert "soak" in text and "scores" in text


def test_summarize_median_and_spread():
    summary = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert summary["median"] == 3.0
    assert summary["p5"] < summary["q25"] < summary["median"] < summary["q75"] < summary["p95"]
    assert summarize([])["n"] == 0


def test_node_and_soak_records_name_the_fastdds_profile(tmp_path):
    import argparse

    from vos_ros.benchmark.ros_procs import isolated_env, transport_label
    from vos_ros.commands.bench import _command_line, add_arguments
    from vos_ros.ros.launch_config import FASTDDS_TRANSPORT_ENV

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for mode in ("node", "soak"):
        args = parser.parse_args(
            [mode, "--model", "flow", "--fastdds-profile", "config/fastdds_shm_udp.xml"]
        )
        assert "--fastdds-profile config/fastdds_shm_udp.xml" in _command_line(args)
    args = parser.parse_args(["node", "--model", "flow"])
    assert "fastdds" not in _command_line(args)
    # the profile reaches every process by absolute path, whatever their working directory
    env = isolated_env(profile="config/fastdds_shm_udp.xml")
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(REPO_ROOT / "config/fastdds_shm_udp.xml")
    assert "FASTDDS_BUILTIN_TRANSPORTS" not in env
    key, value = FASTDDS_TRANSPORT_ENV
    assert value.startswith("LARGE_DATA")
    assert isolated_env()[key] == value
    assert transport_label(None) == f"FASTDDS_BUILTIN_TRANSPORTS={value}"
    # another builtin setting for every process, e.g. whole frames to compare against
    assert isolated_env(transports="LARGE_DATA")[key] == "LARGE_DATA"
    assert transport_label(None, "LARGE_DATA") == "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA"
    with pytest.raises(ValueError, match="not both"):
        isolated_env(profile="config/fastdds_shm_udp.xml", transports="LARGE_DATA")
    whole = "LARGE_DATA?max_msg_size=4MB"
    args = parser.parse_args(["node", "--model", "flow", "--fastdds-transports", whole])
    assert f"--fastdds-transports '{whole}'" in _command_line(args)


def test_paced_cases_start_each_step_on_a_tick(tmp_path):
    # 4 steps (1 warm-up + 3 measured) at 20 Hz take at least 3 periods; the record says so
    import time

    start = time.perf_counter()
    document = _run_bench(tmp_path, "--model", "flow", "--pace-hz", "20")
    assert time.perf_counter() - start >= 2 * 3 / 20  # two cases
    assert all(case["pace_hz"] == 20 for case in document["cases"])
    assert "--pace-hz 20" in document["command"]
    assert any("20 Hz tick" in note for note in document["notes"])
    assert main(["bench", "--model", "flow", "--pace-hz", "0"]) == 2


def test_pacer_does_not_make_up_lost_ticks(monkeypatch):
    from vos_ros.benchmark import engine_bench

    clock = {"now": 0.0}
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(round(seconds, 6))
        clock["now"] += seconds

    monkeypatch.setattr(engine_bench.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(engine_bench.time, "sleep", sleep)
    pacer = engine_bench.Pacer(10.0)
    pacer.wait()  # first tick: at once
    clock["now"] += 0.02  # a fast step
    pacer.wait()  # waits the rest of the period
    clock["now"] += 0.35  # a step over three periods late
    pacer.wait()  # starts at once, no burst afterwards
    clock["now"] += 0.01
    pacer.wait()
    assert sleeps == [0.08, 0.09]
    engine_bench.Pacer(None).wait()  # back-to-back: never sleeps
    assert len(sleeps) == 2
    with pytest.raises(ValueError, match="positive"):
        engine_bench.Pacer(0.0)


def test_node_block_compares_with_the_paced_engine():
    from vos_ros.benchmark.node_bench import _compare, node_block, node_target_checks

    def case(ms: float) -> dict:
        return {"end_to_end_ms": summarize([ms] * 5)}

    result = {
        "size": "854x480",
        "rate_hz": 30.0,
        "seconds": 15.0,
        "warmup_seconds": 4.0,
        "transport": "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA",
        "engine_alone": {"1": case(10.0)},
        "engine_alone_paced": {"1": case(12.5)},
        "passthrough": {"output_hz": 30.0, "latency_ms": summarize([2.0] * 5)},
        "node": {"1": {"output_hz": 30.0, "latency_ms": summarize([14.0] * 5), "diagnostics": {}}},
    }
    result["comparison"] = _compare(result, 30.0)
    entry = result["comparison"]["1"]
    assert entry["latency_overhead"] == pytest.approx(0.4)
    assert entry["latency_overhead_paced"] == pytest.approx(0.12)
    result["checks"] = node_target_checks(result)
    paced = [c for c in result["checks"] if "at the input rate" in c["target"]]
    assert len(paced) == 1 and paced[0]["met"] and "12.5 ms paced at 30 Hz" in paced[0]["measured"]
    row = next(line for line in node_block(result).splitlines() if line.startswith("| vos_node"))
    assert "| 10.0 | 12.5 |" in row and "+40% (latency)" in row and "+12%" in row
    # a record from before paced runs existed still renders
    del result["engine_alone_paced"]
    result["comparison"] = _compare(result, 30.0)
    assert "latency_overhead_paced" not in result["comparison"]["1"]
    assert "| 10.0 | – |" in node_block(result)


def test_stage_breakdown_splits_the_node_latency():
    from vos_ros.benchmark.node_bench import _diag_delta, breakdown_block, stage_breakdown

    diag = _diag_delta(
        {"frames_processed": "10"},
        {
            "frames_processed": "40",
            "stage_input_age_median_ms": "2.00",
            "stage_wait_median_ms": "0.25",
            "stage_encoder_median_ms": "3.00",
            "stage_publish_median_ms": "0.75",
        },
    )
    assert diag["processed"] == 30
    assert diag["stages_median_ms"] == {
        "input_age": 2.0,
        "wait": 0.25,
        "encoder": 3.0,
        "publish": 0.75,
    }
    paced = {
        name: summarize([ms] * 3)
        for name, ms in {"msg_in": 0.5, "encoder": 2.5, "msg_out": 0.25, "serialize": 0.25}.items()
    }
    result = {
        "rate_hz": 30.0,
        "engine_alone_paced": {"1": {"stages_ms": paced}},
        "node": {
            "1": {"latency_ms": summarize([8.0] * 5), "diagnostics": diag},
            "3": {"latency_ms": summarize([9.0] * 5), "diagnostics": {}},  # no stages: left out
        },
    }
    breakdown = stage_breakdown(result)
    assert list(breakdown) == ["1"]
    node = breakdown["1"]["node"]
    assert node["rest"] == pytest.approx(2.0) and node["stamp_to_arrival"] == 8.0
    engine = breakdown["1"]["engine_alone_paced"]
    assert engine == {"decode": 0.5, "encoder": 2.5, "publish": 0.5}
    result["stage_breakdown"] = breakdown
    rows = [
        line for line in breakdown_block(result).splitlines() if line.startswith("| ")
    ]  # no rule
    assert rows[0].startswith("| row | targets | input_age | wait |")
    assert rows[1].startswith("| vos_node | 1 | 2.00 | 0.25 | – | – |")
    assert rows[1].endswith("| 0.75 | 2.00 | 8.00 |")
    assert rows[2].startswith("| engine alone at 30 Hz | 1 | – | – | 0.50 | – |")
    assert breakdown_block({"stage_breakdown": {}}) == ""


def test_the_node_is_prompted_on_the_engines_prompt_frame():
    import numpy as np

    from vos_ros.benchmark.clips import BenchClip
    from vos_ros.benchmark.node_bench import frame_showing_all
    from vos_ros.benchmark.ros_procs import Arrival, TopicLog

    labels = np.zeros((4, 2, 2), np.uint16)
    labels[:, 0, 0] = 1
    labels[2, 0, 0] = 0  # target 1 hidden on frame 2
    clip = BenchClip(np.zeros((4, 2, 2, 3), np.uint8), labels, {1: "object"})
    log = TopicLog()
    for stamp, index in enumerate((0, 1, 2, 3, 2)):
        log.add(Arrival(arrival_ns=stamp, stamp_ns=stamp, index=index, instances=1))
    assert frame_showing_all(log, clip, timeout=0.1).index == 3  # the newest showing all
    assert frame_showing_all(log, clip, timeout=0.1, frame=0).stamp_ns == 0
    with pytest.raises(RuntimeError, match="on clip frame 2"):
        frame_showing_all(log, clip, timeout=0.1, frame=2)


def test_engine_rss_reports_memory_after_each_step(tmp_path):
    from vos_ros.benchmark import engine_rss

    out = tmp_path / "rss.json"
    args = ["--model", "flow", "--frames", "8", "--churn-every", "3", "--width", "128"]
    assert engine_rss.main([*args, "--height", "96", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert len(report["rows"]) == 8 and report["backend"] == "flow"
    assert all(row["rss_mib"] > 0 for row in report["rows"])
    assert {"rss_first_third_mib", "rss_last_third_mib", "rss_growth_pct"} <= set(report)
