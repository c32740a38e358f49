"""``sensor_msgs/Image`` <-> numpy for rclpy messages, using :mod:`vos_ros.image_conversion`."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vos_ros.image_conversion import array_to_image_fields, image_to_array, to_rgb


def msg_to_array(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as (H, W) or (H, W, C), a view of ``msg.data`` where possible."""
    return image_to_array(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)


def msg_to_rgb(msg: Image) -> np.ndarray:
    """``msg`` as a C-contiguous RGB uint8 array (H, W, 3); see image_conversion.to_rgb."""
    return to_rgb(msg_to_array(msg), msg.encoding)


def array_to_msg(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image message holding ``array`` (shape and dtype as the encoding needs) and ``header``."""
    fields = array_to_image_fields(array, encoding)
    # data is bytes: rclpy stores it with one buffer copy instead of checking every element.
    msg = Image(**fields)
    if header is not None:
        msg.header = header
    return msg
