"""Property-based test of the resolution adapter: a camera may change its resolution at any
frame; results always come back at the frame's size, with the tracked ids, consistent masks and
boxes, and requests drawn at the new size either work or raise the engine's ValueError.

Profiles: see test/hypothesis_profiles.py (``HYPOTHESIS_PROFILE=long`` for the long run).
"""

from __future__ import annotations

import hypothesis_profiles  # noqa: F401 - loads the settings profile
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vos_ros.engine import EngineConfig, build_engine
from vos_ros.ros.stream_size import ResolutionAdapter

SIZES = st.tuples(st.integers(8, 72), st.integers(8, 96))


def _frame(hw: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*hw, 3), dtype=np.uint8)


def _box_mask(hw: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    height, width = hw
    y0, x0 = int(rng.integers(0, height - 2)), int(rng.integers(0, width - 2))
    mask = np.zeros(hw, bool)
    mask[y0 : y0 + max(2, height // 3), x0 : x0 + max(2, width // 3)] = True
    return mask


@given(
    start=SIZES,
    changes=st.lists(st.tuples(SIZES, st.booleans(), st.integers(0, 999)), min_size=1, max_size=5),
)
def test_results_follow_the_camera_size_and_keep_the_targets(start, changes):
    notices: list[str] = []
    engine = ResolutionAdapter(
        build_engine(EngineConfig(model="flow", processing_short_side=64)), on_change=notices.append
    )
    labels = np.zeros(start, np.uint16)
    labels[_box_mask(start, 1)] = 1
    labels[_box_mask(start, 2) & (labels == 0)] = 2
    present = sorted(set(np.unique(labels).tolist()) - {0})
    engine.add_targets(_frame(start, 0), labels, {i: "thing" for i in present})
    tracked = set(present)
    for hw, add_one, seed in changes:
        frame = _frame(hw, seed)
        if add_one:  # a request drawn at the camera's current size
            new_id = max(tracked | {0}) + 1
            extra = np.zeros(hw, np.uint16)
            extra[_box_mask(hw, seed)] = new_id
            try:
                engine.add_targets(frame, extra, {new_id: "late"})
                tracked.add(new_id)
            except ValueError as exc:  # the mask vanished when scaled down to the stream size
                assert "no target pixel" in str(exc) or "has no pixel" in str(exc), exc
        result = engine.step(frame)
        assert result.label_image.shape == hw
        assert sorted(t.target_id for t in result.targets) == sorted(tracked)
        assert set(np.unique(result.label_image).tolist()) - {0} <= tracked
        for target in result.targets:
            assert target.mask.shape == hw
            if target.visible:
                assert np.array_equal(target.mask, result.label_image == target.target_id)
                ys, xs = np.nonzero(target.mask)
                box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
                assert tuple(target.box) == box
            else:
                assert not target.mask.any() and tuple(target.box) == (0, 0, 0, 0)
    if any(hw != start for hw, _, _ in changes):
        assert notices and "camera resolution changed" in notices[0]
