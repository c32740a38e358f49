"""Inject inference failures into the node's engine, for reliability tests and the fault soak.

Nothing here is reachable from a ROS parameter or message: a failing engine only exists when
Python code builds the node with :func:`failing_engine_factory` (``VosNode(engine_factory=...)``),
as ``python -m vos_ros.benchmark.faulty_node`` and the tests do.

Where the failure happens:

- a network model: the backend (:mod:`vos_ros.engine.backends`) raises from inside
  ``run_encoder`` / ``run_decoder``, half-way through ``engine.step``, the way an ONNX Runtime,
  CUDA or TensorRT error does;
- the flow fallback (no backend): ``engine.step`` raises before it starts.

Failures come every ``every``-th call (deterministic, so tests are repeatable) and, with
``permanent_after``, the backend stays broken from that call on (a lost GPU): only a new
engine (re-configure) recovers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class InjectedBackendError(RuntimeError):
    """The failure :class:`FaultPlan` raises (a RuntimeError, as backends raise)."""


class FaultPlan:
    """Decides which calls fail; thread-safe, counts calls and failures.

    :param every: every ``every``-th call fails (0 = never).
    :param permanent_after: from this call on every call fails (0 = never).
    """

    def __init__(self, every: int = 0, permanent_after: int = 0) -> None:
        if every < 0 or permanent_after < 0:
            raise ValueError("every and permanent_after must be >= 0")
        self.every = every
        self.permanent_after = permanent_after
        self.calls = 0
        self.failures = 0
        self._lock = threading.Lock()

    def check(self, where: str) -> None:
        """Count one call; raise :class:`InjectedBackendError` when the plan says this one fails."""
        with self._lock:
            self.calls += 1
            call = self.calls
            fail = (self.every and call % self.every == 0) or (
                self.permanent_after and call >= self.permanent_after
            )
            if fail:
                self.failures += 1
        if fail:
            raise InjectedBackendError(f"injected backend failure in {where} (call {call})")


class FailingBackend:
    """A backend whose ``run_encoder`` / ``run_decoder`` fail as ``plan`` says."""

    def __init__(self, inner: Any, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan
        self.name = inner.name
        self.device = inner.device

    def run_encoder(self, image):
        self._plan.check("run_encoder")
        return self._inner.run_encoder(image)

    def run_decoder(self, *args):
        self._plan.check("run_decoder")
        return self._inner.run_decoder(*args)

    def to_numpy(self, tensor):
        return self._inner.to_numpy(tensor)

    def __getattr__(self, name: str) -> Any:  # anything else a backend offers
        return getattr(self._inner, name)


class FailingStepEngine:
    """An engine whose ``step`` fails as ``plan`` says (for engines without a backend)."""

    def __init__(self, inner: Any, plan: FaultPlan) -> None:
        self._inner = inner
        self._plan = plan

    def step(self, frame_rgb, prompt=None):
        self._plan.check("engine.step")
        return self._inner.step(frame_rgb, prompt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def inject_failures(engine: Any, plan: FaultPlan) -> Any:
    """``engine`` with failures injected where a real one would fail (see the module text)."""
    predictor = getattr(engine, "predictor", None)
    backend = getattr(predictor, "backend", None)
    if backend is not None:
        predictor.backend = FailingBackend(backend, plan)
        return engine
    return FailingStepEngine(engine, plan)


def failing_engine_factory(
    plan: FaultPlan, build: Callable[[Any], Any] | None = None
) -> Callable[[Any], Any]:
    """A ``VosNode(engine_factory=...)`` that builds the configured engine and injects ``plan``.

    Warm-up runs before the injection, so configure itself never fails. ``build`` defaults to
    :func:`vos_ros.ros.node.build_node_engine`.
    """

    def factory(config: Any) -> Any:
        if build is None:
            from vos_ros.ros.node import build_node_engine

            engine = build_node_engine(config)
        else:
            engine = build(config)
        return inject_failures(engine, plan)

    return factory
