"""Helpers of the console tests: a console server on a free port, short test videos."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np


def console_server(**settings):
    """A :class:`vos_ros.console.server.BackgroundServer` on a free port of 127.0.0.1 and a
    random ROS domain (so it never sees another test's nodes) unless given."""
    from vos_ros.console.server import BackgroundServer
    from vos_ros.console.settings import ConsoleSettings

    settings.setdefault("port", 0)
    settings.setdefault("domain_id", random.randint(150, 220))
    return BackgroundServer(ConsoleSettings(**settings))


def write_webm(path: Path, frames: int = 12, width: int = 160, height: int = 120) -> Path:
    """A short WebM (VP8) of the synthetic scene: coloured objects moving on a textured ground."""
    import cv2

    from vos_ros.synthetic import SceneConfig, generate

    scene = generate(SceneConfig(width=width, height=height, frames=frames, objects=2, seed=3))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), 10.0, (width, height))
    assert writer.isOpened(), "this OpenCV cannot write WebM"
    for frame in scene.frames():
        writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def first_object_box(frames: int = 12, width: int = 160, height: int = 120, seed: int = 3):
    """Bounding box (x0, y0, x1, y1) of object 1 on frame 0 of :func:`write_webm`'s scene."""
    from vos_ros.synthetic import SceneConfig, generate

    scene = generate(SceneConfig(width=width, height=height, frames=frames, objects=2, seed=seed))
    label = next(iter(scene.frames())).label
    ys, xs = np.nonzero(label == next(int(v) for v in np.unique(label) if v > 0))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def drag_box(driver, element, box, image_size) -> None:
    """Drag a box ``(x0, y0, x1, y1)`` in image pixels over ``element`` (pointer events)."""
    from selenium.webdriver.common.action_chains import ActionChains

    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)
    sx, sy = rect["width"] / image_size[0], rect["height"] / image_size[1]
    # Selenium 4 offsets are from the element's centre
    x0, y0 = box[0] * sx - rect["width"] / 2, box[1] * sy - rect["height"] / 2
    dx, dy = (box[2] - box[0]) * sx, (box[3] - box[1]) * sy
    chain = ActionChains(driver)
    chain.move_to_element_with_offset(element, round(x0), round(y0)).click_and_hold()
    chain.move_by_offset(round(dx / 2), round(dy / 2)).move_by_offset(round(dx / 2), round(dy / 2))
    chain.release().perform()


def click_at(driver, element, x: float, y: float, image_size) -> None:
    """Click at pixel ``(x, y)`` of the image shown by ``element`` (pointer events)."""
    from selenium.webdriver.common.action_chains import ActionChains

    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", element)
    ox = x * rect["width"] / image_size[0] - rect["width"] / 2
    oy = y * rect["height"] / image_size[1] - rect["height"] / 2
    ActionChains(driver).move_to_element_with_offset(
        element, round(ox), round(oy)
    ).click().perform()
