"""``make-bag --davis`` and ``evaluate`` end to end on a hand-made DAVIS folder; truncated sqlite3
bags; ``--classes``, ``--sequences``, ``--overlay-video``, ``latency.png`` and the timing keys;
ground truth in the wrong encoding through the CLI."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from vos_ros.bag_io import (
    BagClip,
    BagError,
    BagFrame,
    bag_topics,
    image_message,
    project_typestore,
    read_messages,
    write_bag,
)
from vos_ros.cli import main
from vos_ros.evaluation.davis_folder import read_label_png, read_rgb, write_label_png

pytest.importorskip("rosbags")

H, W = 48, 64
# sequence -> frames, and per object: (first frame, class in DIR/classes.json or None)
SEQUENCES: dict[str, tuple[int, dict[int, tuple[int, str | None]]]] = {
    "alpha": (6, {1: (0, "person"), 2: (2, "dog")}),  # object 2 appears on frame 2
    "beta": (5, {1: (0, "car")}),
    "gamma": (4, {1: (0, None)}),  # not in classes.json: class "object"
}
START_NS = 1_000_000_000  # make-bag's first stamp


def _scene(seed: int, n: int, objects: dict[int, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` textured RGB frames with moving rectangles, and their label images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    background = np.stack([xx * 3, yy * 4, (xx + yy) * 2], axis=2) % 256
    background = (background + rng.integers(0, 40, (H, W, 3))).clip(0, 255).astype(np.uint8)
    colours = {1: (230, 40, 40), 2: (40, 40, 230)}
    out = []
    for i in range(n):
        image = background.copy()
        label = np.zeros((H, W), np.uint8)
        for oid, first in objects.items():
            if i < first:
                continue
            y, x = 6 + 12 * (oid - 1), 4 + 3 * i + 20 * (oid - 1)
            label[y : y + 14, x : x + 16] = oid
            image[y : y + 14, x : x + 16] = colours[oid]
        out.append((image, label))
    return out


@pytest.fixture(scope="module")
def davis_dir(tmp_path_factory) -> Path:
    """A DAVIS-layout folder: JPEG frames, palette PNG annotations, a partial classes.json."""
    root = tmp_path_factory.mktemp("davis")
    classes: dict[str, dict[str, str]] = {}
    for seed, (name, (n, objects)) in enumerate(SEQUENCES.items()):
        images = root / "JPEGImages" / "480p" / name
        images.mkdir(parents=True)
        scene = _scene(seed, n, {k: first for k, (first, _) in objects.items()})
        for i, (image, label) in enumerate(scene):
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(images / f"{i:05d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
            write_label_png(root / "Annotations" / "480p" / name / f"{i:05d}.png", label)
        named = {str(k): c for k, (_, c) in objects.items() if c is not None}
        if named:
            classes[name] = named
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def _frame_files(davis_dir: Path, sequence: str) -> list[tuple[Path, Path]]:
    images = sorted((davis_dir / "JPEGImages" / "480p" / sequence).glob("*.jpg"))
    return [(p, davis_dir / "Annotations" / "480p" / sequence / f"{p.stem}.png") for p in images]


def _make_bag(davis_dir: Path, out: Path, *options: str) -> None:
    assert main(["make-bag", "--davis", str(davis_dir), "--out", str(out), *options]) == 0


def _evaluate(source: list[str], report: Path, *options: str) -> int:
    command = ["evaluate", *source, "--model", "flow", "--json", str(report), "--no-progress"]
    return main([*command, *options])


def _engine() -> None:
    pytest.importorskip("vos_ros.engine")


# --- make-bag --davis ------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("storage", "gt_encoding", "label_encoding", "fps"),
    [("mcap", "instance", "mono8", 10.0), ("sqlite3", "panoptic", "32SC1", 4.0)],
)
def test_make_bag_from_davis_writes_frames_labels_stamps_and_classes(
    davis_dir: Path, tmp_path: Path, storage: str, gt_encoding: str, label_encoding: str, fps: float
):
    """make-bag writes every JPEG frame (rgb8) and annotation (in the chosen encoding) of each
    sequence, stamped at the chosen rate, with the class map, in the chosen storage; the
    evaluator scores the bags exactly as it scores the DAVIS folder they came from."""
    _engine()
    bags = tmp_path / "bags"
    options = ["--sequences", "alpha,beta", "--fps", str(fps), "--storage", storage]
    options += ["--gt-encoding", gt_encoding]
    if gt_encoding == "instance":
        options += ["--gt-image-encoding", label_encoding]  # panoptic: the default, 32SC1
    _make_bag(davis_dir, bags, *options)
    assert sorted(p.name for p in bags.iterdir()) == ["alpha", "beta"]  # one bag per sequence
    suffix = ".mcap" if storage == "mcap" else ".db3"
    for name in ("alpha", "beta"):
        bag = bags / name
        assert len(list(bag.glob(f"*{suffix}"))) == 1
        files = _frame_files(davis_dir, name)
        _, objects = SEQUENCES[name]
        # panoptic class ids of a bag: 1-based, alphabetical over its classes and "object"
        names = sorted({c for _, c in objects.values()} | {"object"})
        panoptic_ids = {c: i + 1 for i, c in enumerate(names)}
        messages = list(read_messages(bag))
        images = [m for t, _, m in messages if t == "/camera/image_raw"]
        labels = [m for t, _, m in messages if t == "/camera/ground_truth"]
        (class_msg,) = [m for t, _, m in messages if t == "/camera/ground_truth/classes"]
        assert len(images) == len(labels) == len(files)
        assert {m.encoding for m in images} == {"rgb8"}
        assert {m.encoding for m in labels} == {label_encoding}
        expected_stamps = [START_NS + round(i * 1e9 / fps) for i in range(len(files))]
        stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in images]
        assert stamps == expected_stamps
        log_times = [t_ns for t, t_ns, _ in messages if t == "/camera/image_raw"]
        assert log_times == expected_stamps  # recorded when they were taken
        assert np.allclose(np.diff(stamps), 1e9 / fps, atol=1)
        class_map = json.loads(class_msg.data)
        if gt_encoding == "instance":
            assert class_map == {str(k): c for k, (_, c) in objects.items()}
        else:
            assert class_map == {str(v): k for k, v in panoptic_ids.items()}

        clip = BagClip(bag, gt_encoding=gt_encoding)
        frames = list(clip.frames())
        assert len(clip) == len(frames) == len(files)
        for frame, (jpg, png), stamp in zip(frames, files, expected_stamps, strict=True):
            assert frame.stamp_ns == stamp
            assert np.array_equal(frame.image, read_rgb(jpg))  # the decoded JPEG, unchanged
            ids = read_label_png(png).astype(np.int64)
            if gt_encoding == "panoptic":
                panoptic = np.zeros_like(ids)
                for k, (_, c) in objects.items():
                    panoptic[ids == k] = panoptic_ids[c] * 1000 + k
                ids = panoptic
            assert np.array_equal(frame.gt.instances, ids)
        last = frames[-1].gt.instance_classes
        if gt_encoding == "instance":
            assert last == {k: c for k, (_, c) in objects.items()}
        else:
            assert set(last.values()) == {c for _, c in objects.values()}

    extra = [] if gt_encoding == "instance" else ["--gt-encoding", "panoptic"]
    assert _evaluate(["--bag", str(bags)], tmp_path / "bag.json", *extra) == 0
    report = json.loads((tmp_path / "bag.json").read_text())
    assert report["meta"]["mode"] == "offline" and not report["meta"]["partial"]
    assert {k: v["complete"] for k, v in report["sequences"].items()} == {
        "alpha": True,
        "beta": True,
    }
    assert set(report["per_class_iou"]) == {"person", "dog", "car"}
    assert report["timing"]["frames"] == 6 + 5
    assert len(report["davis"]["per_sequence"]) == 3
    # the same frames, ground truth and deterministic engine as the folder: the same scores
    davis_json = tmp_path / "davis.json"
    assert _evaluate(["--davis", str(davis_dir), "--sequences", "alpha,beta"], davis_json) == 0
    direct = json.loads(davis_json.read_text())
    for key in ("per_class_iou", "background_iou"):
        assert report[key] == pytest.approx(direct[key], abs=1e-9), key
    assert report["davis"]["global"] == pytest.approx(direct["davis"]["global"], abs=1e-9)


@pytest.mark.timeout(60)
def test_make_bag_refuses_labels_that_do_not_fit_the_encoding(davis_dir: Path, tmp_path, capsys):
    """Panoptic values (class*1000 + id) do not fit mono8: make-bag says so instead of wrapping."""
    out = tmp_path / "bag"
    options = ["--sequences", "beta", "--gt-encoding", "panoptic", "--gt-image-encoding", "mono8"]
    assert main(["make-bag", "--davis", str(davis_dir), "--out", str(out), *options]) == 2
    assert "does not fit mono8" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_bag_class_map_from_classes_file_overrides_the_class_topic(davis_dir: Path, tmp_path):
    """``evaluate --bag --classes FILE`` ({id: class}) names the objects instead of the bag's
    class topic."""
    _engine()
    _make_bag(davis_dir, tmp_path / "beta", "--sequences", "beta")
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"1": "truck"}))
    report_path = tmp_path / "r.json"
    assert _evaluate(["--bag", str(tmp_path / "beta")], report_path, "--classes", str(classes)) == 0
    report = json.loads(report_path.read_text())
    assert set(report["per_class_iou"]) == {"truck"}
    assert report["davis"]["per_sequence"]["beta_1"]["class"] == "truck"


# --- truncated sqlite3 bags ------------------------------------------------------------------


def _bag_frames(n: int) -> list[BagFrame]:
    return [
        BagFrame(image, label.astype(np.uint16), START_NS + i * 66_666_667)
        for i, (image, label) in enumerate(_scene(7, n, {1: 0}))
    ]


def _truncated_sqlite_bag(tmp_path: Path, frames: list[BagFrame], keep: float) -> Path:
    write_bag(tmp_path / "full", frames, storage="sqlite3")
    shutil.copytree(tmp_path / "full", tmp_path / "cut")
    (db,) = (tmp_path / "cut").glob("*.db3")
    with open(db, "r+b") as handle:
        handle.truncate(int(os.path.getsize(db) * keep))
    return tmp_path / "cut"


@pytest.mark.timeout(60)
def test_truncated_sqlite_bag_yields_the_readable_frames_then_fails(tmp_path: Path):
    """The reader recovers the frames before the damage of a cut sqlite3 file, unchanged, and
    then raises a BagError that says the bag is truncated."""
    frames = _bag_frames(30)
    bag = _truncated_sqlite_bag(tmp_path, frames, 0.6)
    assert set(bag_topics(bag)) >= {"/camera/image_raw", "/camera/ground_truth"}
    got = []
    with pytest.raises(BagError, match="truncated or damaged"):
        for frame in BagClip(bag, class_topic=None).frames():
            got.append(frame)
    assert 0 < len(got) < 30
    for src, frame in zip(frames, got, strict=False):
        assert np.array_equal(frame.image, src.image) and frame.stamp_ns == src.stamp_ns
        assert np.array_equal(frame.gt.instances, src.label)


@pytest.mark.timeout(120)
def test_truncated_sqlite_bag_gives_a_partial_report(tmp_path: Path, capsys):
    """``evaluate`` on a cut sqlite3 bag: exit 2, a message naming the damage, and a partial
    report of the frames that could be read."""
    _engine()
    bag = _truncated_sqlite_bag(tmp_path, _bag_frames(30), 0.6)
    assert _evaluate(["--bag", str(bag)], tmp_path / "r.json") == 2
    err = capsys.readouterr().err
    assert "truncated or damaged" in err and str(bag) in err, err
    assert "Traceback" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"] and report["meta"]["errors"]
    (sequence,) = report["sequences"].values()
    assert sequence["complete"] is False and sequence["error"]
    assert 0 < report["timing"]["frames"] < 30


@pytest.mark.timeout(60)
def test_sqlite_bag_cut_before_any_frame_ends_with_a_message_and_no_report(tmp_path, capsys):
    """A sqlite3 bag cut so short that no frame survives: a clear message, no report."""
    bag = _truncated_sqlite_bag(tmp_path, _bag_frames(30), 0.02)
    assert _evaluate(["--bag", str(bag)], tmp_path / "r.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bag) in err and "Traceback" not in err
    assert "truncated or damaged" in err or "cannot open bag" in err, err
    assert not (tmp_path / "r.json").exists()


# --- --classes, --sequences, --overlay-video, latency.png, timing ----------------------------


@pytest.fixture(scope="module")
def options_run(davis_dir: Path, tmp_path_factory) -> tuple[dict, Path]:
    """One offline run: ``--sequences gamma,alpha --classes FILE --report-dir --overlay-video``."""
    pytest.importorskip("vos_ros.engine")
    out = tmp_path_factory.mktemp("options")
    classes = out / "other_classes.json"
    classes.write_text(json.dumps({"alpha": {"1": "cat", "2": "bird"}, "gamma": {"1": "boat"}}))
    source = ["--davis", str(davis_dir), "--sequences", "gamma,alpha"]
    options = ["--classes", str(classes), "--report-dir", str(out / "report"), "--overlay-video"]
    assert _evaluate(source, out / "r.json", *options) == 0
    return json.loads((out / "r.json").read_text()), out / "report"


def test_sequences_option_scores_exactly_the_named_sequences(options_run):
    """``--sequences gamma,alpha`` scores those two (in that order) and nothing else."""
    report, _ = options_run
    assert list(report["sequences"]) == ["gamma", "alpha"]
    assert all(s["complete"] for s in report["sequences"].values())
    assert report["timing"]["frames"] == 4 + 6
    assert {k.rsplit("_", 1)[0] for k in report["davis"]["per_sequence"]} == {"gamma", "alpha"}


def test_classes_file_replaces_the_folder_class_map(options_run):
    """``--classes FILE`` is used instead of DIR/classes.json (which says person and dog)."""
    report, _ = options_run
    assert set(report["per_class_iou"]) == {"cat", "bird", "boat"}
    per_sequence = report["davis"]["per_sequence"]
    assert per_sequence["alpha_1"]["class"] == "cat" and per_sequence["alpha_2"]["class"] == "bird"
    assert per_sequence["gamma_1"]["class"] == "boat"


def test_overlay_video_has_one_frame_per_input_frame(options_run):
    """``--overlay-video`` writes a readable MP4 per sequence, frame size and count as the input."""
    _, report_dir = options_run
    for name in ("gamma", "alpha"):
        path = report_dir / "videos" / f"{name}.mp4"
        assert path.is_file()
        capture = cv2.VideoCapture(str(path))
        assert capture.isOpened()
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
        assert len(frames) == SEQUENCES[name][0]
        assert frames[0].shape == (H, W, 3)
    assert not (report_dir / "videos" / "beta.mp4").exists()


def test_latency_plot_is_written(options_run):
    """``--report-dir`` of an engine run holds ``latency.png``, a real image."""
    _, report_dir = options_run
    image = cv2.imread(str(report_dir / "latency.png"))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 200
    assert float(np.std(image)) > 5  # bars and text, not a blank canvas
    assert (report_dir / "report.html").is_file()


def test_timing_has_latency_percentiles_of_the_per_frame_latencies(options_run):
    """``timing.latency_ms`` holds mean/p50/p95/p99/max, ordered, and the percentiles are those of
    ``per_frame_ms``."""
    report, _ = options_run
    timing = report["timing"]
    latency = timing["latency_ms"]
    assert set(latency) == {"mean", "p50", "p95", "p99", "max"}
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in latency.values())
    assert latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    per_frame = np.asarray(timing["per_frame_ms"])
    assert per_frame.size == timing["frames"]
    for q in (50, 95, 99):
        assert latency[f"p{q}"] == pytest.approx(np.percentile(per_frame, q), abs=2e-3)
    assert latency["max"] == pytest.approx(per_frame.max(), abs=1e-3)
    assert timing["fps"] > 0 and timing["dropped_frames"] == 0


# --- ground truth in the wrong encoding, through the CLI -------------------------------------


@pytest.mark.timeout(60)
def test_cli_wrong_ground_truth_encoding_names_it_and_writes_nothing(davis_dir, tmp_path, capsys):
    """Panoptic (32SC1) ground truth read as instance ids: a clear message naming the topic, the
    encoding and the option; nothing was scored, so no report."""
    _engine()
    _make_bag(davis_dir, tmp_path / "bag", "--sequences", "beta", "--gt-encoding", "panoptic")
    assert _evaluate(["--bag", str(tmp_path / "bag")], tmp_path / "r.json") == 2
    err = capsys.readouterr().err
    assert "ground truth on /camera/ground_truth is '32SC1'" in err
    assert "--gt-encoding" in err and "Traceback" not in err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.timeout(60)
def test_cli_wrong_encoding_in_one_bag_keeps_the_others(davis_dir, tmp_path, capsys):
    """In a folder of bags, the bag with the wrong label encoding is reported as an error; the
    other one is scored completely into a partial report."""
    _engine()
    _make_bag(davis_dir, tmp_path / "bags" / "alpha", "--sequences", "alpha")
    _make_bag(
        davis_dir, tmp_path / "bags" / "beta", "--sequences", "beta", "--gt-encoding", "panoptic"
    )
    assert _evaluate(["--bag", str(tmp_path / "bags")], tmp_path / "r.json") == 2
    assert "is '32SC1', but the instance encoding needs one of" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"]
    assert report["sequences"]["alpha"]["complete"] is True
    assert "beta" not in report["sequences"] or not report["sequences"]["beta"]["complete"]
    assert report["timing"]["frames"] == 6
    assert any("32SC1" in e for e in report["meta"]["errors"])


@pytest.mark.timeout(60)
def test_cli_encoding_that_changes_mid_bag_gives_a_partial_report(tmp_path, capsys):
    """Ground truth that switches from mono16 to 32SC1 at frame 4: the frames before it are scored
    into a partial report, and the message names the encoding."""
    _engine()
    from rosbags.rosbag2 import Writer

    store = project_typestore()
    with Writer(tmp_path / "bag", version=9) as writer:
        images = writer.add_connection(
            "/camera/image_raw", "sensor_msgs/msg/Image", typestore=store
        )
        truth = writer.add_connection(
            "/camera/ground_truth", "sensor_msgs/msg/Image", typestore=store
        )
        for i, frame in enumerate(_bag_frames(6)):
            encoding = "mono16" if i < 4 else "32SC1"
            image = image_message(store, frame.image, frame.stamp_ns, "rgb8", "camera")
            gt = image_message(store, frame.label, frame.stamp_ns, encoding, "camera")
            writer.write(
                images, frame.stamp_ns, store.serialize_cdr(image, "sensor_msgs/msg/Image")
            )
            writer.write(truth, frame.stamp_ns, store.serialize_cdr(gt, "sensor_msgs/msg/Image"))
    assert _evaluate(["--bag", str(tmp_path / "bag")], tmp_path / "r.json") == 2
    assert "ground truth on /camera/ground_truth is '32SC1'" in capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["meta"]["partial"] and report["timing"]["frames"] == 4
    (sequence,) = report["sequences"].values()
    assert sequence["complete"] is False and "32SC1" in sequence["error"]
