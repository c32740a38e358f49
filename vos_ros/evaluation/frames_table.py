"""One row per object and frame, as a Parquet file (``vos-ros evaluate --frames-parquet OUT``).

The JSON report keeps J and F per frame as lists per object; a flat table is what pandas or
DuckDB want for analysis across thousands of bags::

    import duckdb
    duckdb.sql("SELECT sequence, class, avg(J) FROM 'frames.parquet' GROUP BY ALL")

Columns: ``sequence``, ``object`` (ground-truth key), ``name`` (``<sequence>_<object>``, the
report's key), ``class``, ``frame`` (index in the sequence), ``J``, ``F``, ``intersection`` and
``union`` (pixel counts behind the per-instance IoU). Only the frames the protocol scores are
rows (see :mod:`vos_ros.evaluation.scoring`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vos_ros.evaluation.scoring import DatasetScorer

COLUMNS = ("sequence", "object", "name", "class", "frame", "J", "F", "intersection", "union")


def frame_rows(scorer: DatasetScorer) -> dict[str, list[Any]]:
    """The table as columns (name -> list), in the report's order of sequences and objects."""
    table: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    for seq in scorer.sequences:
        for key, obj in seq.objects.items():
            inst = seq.instances[key]
            # J, F and the instance counts are appended (and the last frame dropped) together
            for i, frame in enumerate(obj.frames):
                table["sequence"].append(seq.info.name)
                table["object"].append(int(key))
                table["name"].append(obj.name)
                table["class"].append(seq.info.object_classes.get(key))
                table["frame"].append(int(frame))
                table["J"].append(float(obj.j[i]))
                table["F"].append(float(obj.f[i]))
                table["intersection"].append(int(inst.intersections[i]))
                table["union"].append(int(inst.unions[i]))
    return table


def write_frames_parquet(scorer: DatasetScorer, path: Path | str) -> Path:
    """Write :func:`frame_rows` as a Parquet file (parent folders are created)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ValueError(
            "--frames-parquet needs pyarrow (pip install pyarrow, or scripts/setup.sh)"
        ) from exc
    rows = frame_rows(scorer)
    schema = pa.schema(
        [
            ("sequence", pa.string()),
            ("object", pa.int64()),
            ("name", pa.string()),
            ("class", pa.string()),
            ("frame", pa.int64()),
            ("J", pa.float64()),
            ("F", pa.float64()),
            ("intersection", pa.int64()),
            ("union", pa.int64()),
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows, schema=schema), path)
    return path
