"""Evaluation: DAVIS J&F (as the official DAVIS 2017 evaluator), per-class and per-instance IoU,
latency, JSON/terminal/HTML reports, on DAVIS folders and rosbag2 bags.

    from vos_ros.evaluation import EvaluationOptions, evaluate
    outcome = evaluate(EvaluationOptions(json_path=Path("out.json"), davis=Path("data/vos")))

See docs/evaluation.md for the protocol, the metrics and the report schema.
"""

from vos_ros.evaluation.davis_metrics import (
    boundary_f_measure,
    boundary_map,
    global_row,
    region_iou,
    series_statistics,
)
from vos_ros.evaluation.scoring import DatasetScorer
from vos_ros.evaluation.session import (
    EvaluationInputError,
    EvaluationOptions,
    EvaluationOutcome,
    evaluate,
)

__all__ = [
    "DatasetScorer",
    "EvaluationInputError",
    "EvaluationOptions",
    "EvaluationOutcome",
    "boundary_f_measure",
    "boundary_map",
    "evaluate",
    "global_row",
    "region_iou",
    "series_statistics",
]
