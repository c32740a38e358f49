"""Inference backends behind one interface (:class:`~vos_ros.engine.backends.base.Backend`)."""

from vos_ros.engine.backends.base import Backend, BackendError

__all__ = ["Backend", "BackendError"]
