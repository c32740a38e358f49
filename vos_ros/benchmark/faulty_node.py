"""``vos_node`` with injected inference failures, for the fault soak (``vos-ros bench faults``).

    python -m vos_ros.benchmark.faulty_node --backend-error-every 40 -- --ros-args -p model:=flow

Everything after ``--`` goes to the node unchanged (remappings, parameters). The node is the
production node; only its engine fails now and then (see :mod:`vos_ros.benchmark.fault_injection`).
This is a separate program on purpose: the production node has no switch that turns failures on.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    node_args: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, node_args = argv[:split], argv[split + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend-error-every",
        type=int,
        default=40,
        help="every N-th backend call (flow model: engine step) raises (0 = never)",
    )
    args = parser.parse_args(argv)
    if args.backend_error_every < 0:
        parser.error("--backend-error-every must be >= 0")

    from vos_ros.benchmark.fault_injection import FaultPlan, failing_engine_factory
    from vos_ros.ros.node import main as node_main

    plan = FaultPlan(every=args.backend_error_every)
    code = node_main([sys.argv[0], *node_args], engine_factory=failing_engine_factory(plan))
    print(f"fault injection: {plan.failures} failures in {plan.calls} calls", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
