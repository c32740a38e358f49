"""Pretrained streaming trackers (model families other than the project's own networks).

``sam2``: SAM 2 / SAM 2.1 from the official ``sam2`` package, run one camera frame at a time
(:mod:`vos_ros.trackers.sam2_stream`).
"""
