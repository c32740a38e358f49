"""Tear a node down after its executor without the rclpy destroy deadlock.

``Node.destroy_node`` waits until no wait set uses the node's handles. An executor that stopped
spinning in the middle of a wait can leave its wait generator (which holds those handles) in a
reference cycle, so it is only released by the garbage collector, and ``destroy_node`` then waits
for it forever (seen as an intermittent hang at the end of a test run). Collecting garbage after
``executor.shutdown()`` releases it first.
"""

from __future__ import annotations

import gc
from typing import Any


def shutdown_executor(executor: Any) -> None:
    """Shut ``executor`` down and free any wait it left pending (call before destroy_node)."""
    executor.shutdown()
    gc.collect()
