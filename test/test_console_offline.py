"""The offline page's server side on a bag with ground truth: the user's targets (clicked points
and a painted mask) are tracked by the engine and scored by the evaluator; every output served."""

from __future__ import annotations

import base64
import time
import zipfile
from io import BytesIO

import cv2
import httpx
import numpy as np
from console_testlib import console_server
from ros_harness import require_ros

require_ros()

FRAMES, WIDTH, HEIGHT = 16, 320, 240


def _bag_file(tmp_path, storage: str = "mcap"):
    """A synthetic bag file (image, ground truth, class map) and its first ground truth."""
    from vos_ros.bag_io import BagFrame, write_bag
    from vos_ros.synthetic import SceneConfig, generate

    scene = generate(SceneConfig(width=WIDTH, height=HEIGHT, frames=FRAMES, objects=2, seed=1))
    frames = [BagFrame(f.image, f.label, f.stamp_ns) for f in scene.frames()]
    folder = tmp_path / f"bag_{storage}"
    write_bag(folder, frames, storage=storage, class_map={1: "person", 2: "car"})
    (file,) = folder.glob("*.mcap" if storage == "mcap" else "*.db3")
    return file, frames[0].label


def test_bag_with_ground_truth_scored_by_the_evaluator(tmp_path):
    mcap, first = _bag_file(tmp_path)
    ids = [int(v) for v in np.unique(first) if v > 0]
    assert len(ids) == 2, "both objects on the first frame"
    ys, xs = np.nonzero(first == ids[0])
    picks = zip(xs[::97][:4], ys[::97][:4], strict=True)
    points = [{"x": float(x), "y": float(y)} for x, y in picks]
    painted = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    painted[first == ids[1]] = 255
    mask_png = base64.b64encode(cv2.imencode(".png", painted)[1].tobytes()).decode()

    with console_server() as server:
        url = server.url + "/api/offline"
        job = httpx.post(url + "/upload", content=mcap.read_bytes()).json()
        assert (job["kind"], job["frames"], job["has_ground_truth"]) == ("mcap", FRAMES, True)
        targets = [
            {"kind": "points", "points": points, "class_label": "person"},
            {"kind": "mask", "mask_png": mask_png, "class_label": "car"},
        ]
        started = httpx.post(f"{url}/{job['id']}/run", json={"targets": targets})
        assert started.status_code == 200, started.text
        again = httpx.post(f"{url}/{job['id']}/run", json={"targets": targets})
        assert again.status_code in (200, 409)  # done already, or refused while running
        deadline = time.monotonic() + 60
        while (job := httpx.get(f"{url}/{job['id']}").json())["state"] == "running":
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["state"] == "done", job["message"]
        assert job["progress"] == {"done": FRAMES, "total": FRAMES}
        assert set(job["outputs"]) == {
            "overlay.webm", "trajectory.png", "report.json", "report.html", "masks.zip",
        }  # fmt: skip

        report = httpx.get(f"{url}/{job['id']}/files/report.json").json()
        # the evaluator matched both drawn targets to the ground-truth objects and scored them
        assert report["sequences"]["upload"]["prompts"] == "recorded"
        assert report["davis"]["global"]["J&F-Mean"] > 0.6
        assert set(report["per_class_iou"]) == {"person", "car"}
        assert job["summary"]["J&F-Mean"] == report["davis"]["global"]["J&F-Mean"]
        video = httpx.get(f"{url}/{job['id']}/files/overlay.webm").content
        assert video[:4] == b"\x1a\x45\xdf\xa3"
        capture_path = tmp_path / "overlay.webm"
        capture_path.write_bytes(video)
        capture = cv2.VideoCapture(str(capture_path))
        assert capture.read()[0] and capture.get(cv2.CAP_PROP_FRAME_WIDTH) == WIDTH
        plot = httpx.get(f"{url}/{job['id']}/files/trajectory.png").content
        assert plot[:8] == b"\x89PNG\r\n\x1a\n"
        html = httpx.get(f"{url}/{job['id']}/files/report.html").text
        assert "J&amp;F" in html or "J&F" in html
        archive = zipfile.ZipFile(BytesIO(httpx.get(f"{url}/{job['id']}/files/masks.zip").content))
        assert len(archive.namelist()) == FRAMES
        last = cv2.imdecode(
            np.frombuffer(archive.read(archive.namelist()[-1]), np.uint8), cv2.IMREAD_UNCHANGED
        )
        assert last.shape == (HEIGHT, WIDTH) and set(np.unique(last)) <= {0, 1, 2}


def test_bad_targets_are_refused_and_the_job_stays_usable(tmp_path):
    mcap, _first = _bag_file(tmp_path)
    with console_server() as server:
        url = server.url + "/api/offline"
        job = httpx.post(url + "/upload", content=mcap.read_bytes()).json()
        for target, needle in (
            ({"kind": "box", "box": [400, 300, 500, 400]}, "outside"),
            ({"kind": "points", "points": [{"x": 5, "y": 5, "positive": False}]}, "positive"),
            ({"kind": "mask", "mask_png": "bm90IGEgcG5n"}, "not a PNG"),
            ({"kind": "mask"}, "needs mask_png"),
        ):
            response = httpx.post(f"{url}/{job['id']}/run", json={"targets": [target]})
            assert response.status_code == 422 and needle in response.json()["detail"], target
        assert httpx.get(f"{url}/{job['id']}").json()["state"] == "ready"
        db3, _first = _bag_file(tmp_path, "sqlite3")  # the other rosbag2 storage
        job = httpx.post(url + "/upload", content=db3.read_bytes()).json()
        assert (job["kind"], job["frames"], job["has_ground_truth"]) == ("db3", FRAMES, True)
