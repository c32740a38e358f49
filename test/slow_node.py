"""``vos_node`` whose engine takes at least ``--min-step-ms`` per frame, for the overload test.

    python test/slow_node.py --min-step-ms 40 -- --ros-args -p model:=flow

Everything after ``--`` goes to the node unchanged. The node is the production node; only each
``engine.step`` is padded (by sleeping the rest of the time), so the camera outpaces the engine on
any machine: a fast quiet machine would otherwise run the engine faster than the camera and the
test would measure no overload.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any


class SlowEngine:
    """``inner`` with every ``step`` taking at least ``min_step_s`` seconds."""

    def __init__(self, inner: Any, min_step_s: float) -> None:
        self._inner = inner
        self._min_step_s = min_step_s

    def step(self, frame_rgb, prompt=None):
        start = time.perf_counter()
        result = self._inner.step(frame_rgb, prompt)
        rest = self._min_step_s - (time.perf_counter() - start)
        if rest > 0:
            time.sleep(rest)
        return result

    def __getattr__(self, name: str) -> Any:  # everything else is the real engine
        return getattr(self._inner, name)


def main() -> int:
    argv = sys.argv[1:]
    node_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, node_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-step-ms", type=float, required=True)
    args = parser.parse_args(argv)

    from vos_ros.ros.node import build_node_engine
    from vos_ros.ros.node import main as node_main

    def factory(config: Any) -> Any:
        return SlowEngine(build_node_engine(config), args.min_step_ms / 1e3)

    return node_main([sys.argv[0], *node_args], engine_factory=factory)


if __name__ == "__main__":
    sys.exit(main())
