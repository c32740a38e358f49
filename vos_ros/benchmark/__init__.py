"""Benchmarks of the engine and the node: per-stage timings, throughput, latency, soak.

- :mod:`~vos_ros.benchmark.engine_bench`: the engine in-process, per backend, size and target count.
- :mod:`~vos_ros.benchmark.node_bench`: the node across processes (publisher -> node -> subscriber),
  against a pass-through node in the same run.
- :mod:`~vos_ros.benchmark.soak`: a long run at camera rate with targets added and removed.

``vos-ros bench`` (:mod:`vos_ros.commands.bench`) runs them and writes JSON and Markdown tables
(docs/benchmarks.md). Numbers are medians and spreads over frames after a warm-up; nothing here
asserts a time.
"""
