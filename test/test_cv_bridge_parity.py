"""Where a ROS 2 distro provides cv_bridge, its arrays equal the project's exact converter's.

The node converts images with :mod:`vos_ros.image_conversion` everywhere (zero-copy views, row
padding, both byte orders, and error messages that name the field that is wrong), so it behaves
the same with and without a distro. This test pins the claim in the README that a distro's
``cv_bridge`` gives the same pixels, for every accepted encoding, with padded rows and both byte
orders. PyPI's ``cv-bridge`` is ROS 1 code (it fails with numpy 2), so the test needs the real
ROS 2 package and skips without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from vos_ros.image_conversion import ENCODINGS, array_to_image_fields, image_to_array

cv_bridge = pytest.importorskip(
    "cv_bridge", reason="cv_bridge comes with a ROS 2 distro (no usable PyPI package)"
)
Image = pytest.importorskip("sensor_msgs.msg").Image

CHECKED = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC1", "16UC1")


def _message(array: np.ndarray, encoding: str, padding: int, bigendian: bool) -> Image:
    fields = array_to_image_fields(array, encoding)
    data = np.frombuffer(fields["data"], np.uint8).reshape(fields["height"], fields["step"])
    if bigendian and array.dtype.itemsize > 1:
        data = array.astype(array.dtype.newbyteorder(">")).view(np.uint8).reshape(data.shape)
    padded = np.zeros((data.shape[0], data.shape[1] + padding), np.uint8)
    padded[:, : data.shape[1]] = data
    fields.update(step=padded.shape[1], data=padded.tobytes(), is_bigendian=int(bigendian))
    return Image(**fields)


@pytest.mark.parametrize("encoding", CHECKED)
@pytest.mark.parametrize("padding", [0, 3])
@pytest.mark.parametrize("bigendian", [False, True])
def test_cv_bridge_gives_the_same_pixels(encoding: str, padding: int, bigendian: bool):
    info = ENCODINGS[encoding]
    rng = np.random.default_rng(len(encoding) + padding)
    shape = (7, 11) if info.channels == 1 else (7, 11, info.channels)
    high = np.iinfo(info.dtype).max
    array = rng.integers(0, high, size=shape, endpoint=True).astype(info.dtype)
    msg = _message(array, encoding, padding * info.dtype.itemsize, bigendian)
    ours = image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
    theirs = cv_bridge.CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough")
    np.testing.assert_array_equal(ours, array)
    np.testing.assert_array_equal(np.asarray(theirs), ours)
