"""A publisher that waits for its subscribers, with a fresh DDS participant when discovery stalls.

On the 2-core development machine, with Fast DDS's LARGE_DATA transports, a new participant now
and then never takes part in discovery: the camera player counts no subscriber after 30 s, the
test client does not see the player either (while it sees the node), and destroying that node
hangs inside rmw. The players therefore leave such a participant alone (not destroyed, see
:attr:`MatchedPublisher.abandoned`) and try again with a new one (a new rclpy context).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any


class MatchedPublisher:
    """``rclpy`` context + node + publisher on ``topic``, once ``min_subscribers`` are matched.

    :param retry_s: give a participant this long to discover the subscribers, then replace it.
    :param stop: polled while waiting; True ends the wait (a signal handler's flag).
    :raises TimeoutError: no participant matched ``min_subscribers`` within ``wait_s``.
    """

    def __init__(
        self,
        node_name: str,
        msg_type: type,
        topic: str,
        qos: Any,
        *,
        min_subscribers: int = 1,
        wait_s: float = 30.0,
        retry_s: float = 10.0,
        stop: Callable[[], bool] = lambda: False,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        import rclpy
        from rclpy.context import Context

        deadline = time.monotonic() + wait_s
        self.attempts = 0
        # Participants that discovered nothing: destroying them can hang, so they stay referenced
        # (garbage collection would destroy them) and the process ends with os._exit (finish).
        self.abandoned: list[Any] = []
        while True:
            self.attempts += 1
            self.context = Context()
            rclpy.init(context=self.context, **(init_options or {}))
            self.node = rclpy.create_node(node_name, context=self.context)
            self.publisher = self.node.create_publisher(msg_type, topic, qos)
            attempt_end = min(deadline, time.monotonic() + retry_s)
            while time.monotonic() < attempt_end and not stop():
                if self.publisher.get_subscription_count() >= min_subscribers:
                    return
                time.sleep(0.05)
            if stop():
                return
            self.abandoned.append((self.context, self.node, self.publisher))
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"no {min_subscribers} subscriber(s) on {topic} after {wait_s:.0f} s "
                    f"({self.attempts} participant(s) tried)"
                )

    def publish(self, message: Any) -> None:
        self.publisher.publish(message)

    def now_msg(self) -> Any:
        return self.node.get_clock().now().to_msg()

    def finish(self, code: int = 0) -> int:
        """Destroy the matched participant; exit at once if one was abandoned (the interpreter's
        clean-up could hang on it), otherwise return ``code`` for a normal exit."""
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self.abandoned:
            sys.stdout.flush()
            os._exit(code)
        return code


def open_for_player(*args: Any, **kwargs: Any) -> MatchedPublisher:
    """:class:`MatchedPublisher` for a player's ``main``: on a timeout print why and exit with 1
    (``os._exit``: the participants that discovered nothing could hang a normal exit)."""
    try:
        publisher = MatchedPublisher(*args, **kwargs)
    except TimeoutError as exc:
        print(exc, file=sys.stderr, flush=True)
        os._exit(1)
    if publisher.attempts > 1:
        print(f"matched with participant {publisher.attempts} (earlier ones discovered nothing)")
    return publisher
