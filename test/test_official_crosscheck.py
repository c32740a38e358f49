"""Our DAVIS scores equal the official DAVIS 2017 evaluator's on real predictions.

The reference CSVs in ``../shared/data/vos/predictions`` were produced by the official
``davis2017-evaluation`` code (semi-supervised, val) on the OSVOS predictions stored beside them.
They hold 3 decimals, so agreement within 0.002 means the same numbers. bmx-trees has no
prediction and is not scored (the official run left it out as well).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vos_ros.evaluation.davis_folder import DavisFolder, PredictionFolder
from vos_ros.evaluation.davis_metrics import GLOBAL_KEYS, global_row, per_sequence_rows
from vos_ros.evaluation.runner import score_predictions_on_clip
from vos_ros.evaluation.scoring import DatasetScorer

TOLERANCE = 0.002


@pytest.fixture(scope="module")
def scored(davis_val_dir: Path):
    predictions = PredictionFolder(davis_val_dir / "predictions" / "osvos_davis2017")
    folder = DavisFolder(davis_val_dir)
    scorer = DatasetScorer()
    for name in predictions.sequences():
        score_predictions_on_clip(folder.clip(name, load_images=False), predictions, scorer)
    return scorer.object_series(), davis_val_dir / "predictions"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_per_sequence_j_and_f_match_the_official_evaluator(scored):
    objects, ref_dir = scored
    ours = per_sequence_rows(objects)
    reference = _rows(ref_dir / "REFERENCE_official_davis2017eval_per-sequence.csv")
    assert {r["Sequence"] for r in reference} == set(ours)
    for row in reference:
        mine = ours[row["Sequence"]]
        assert mine["J-Mean"] == pytest.approx(float(row["J-Mean"]), abs=TOLERANCE), row
        assert mine["F-Mean"] == pytest.approx(float(row["F-Mean"]), abs=TOLERANCE), row


def test_global_row_matches_the_official_evaluator(scored):
    objects, ref_dir = scored
    ours = global_row(objects)
    (reference,) = _rows(ref_dir / "REFERENCE_official_davis2017eval_global.csv")
    assert set(reference) == set(GLOBAL_KEYS)
    for key in GLOBAL_KEYS:
        assert ours[key] == pytest.approx(float(reference[key]), abs=TOLERANCE), key
