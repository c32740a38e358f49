"""Coloured mask overlays for qualitative review: thumbnails for the HTML report, MP4 videos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vos_ros.evaluation.clips import ClipFrame
from vos_ros.evaluation.davis_folder import davis_palette

_PALETTE = davis_palette()


def colour_of(target_id: int) -> tuple[int, int, int]:
    """RGB colour of a target id (the DAVIS palette, cycling past 255)."""
    r, g, b = _PALETTE[1 + (int(target_id) - 1) % 255]
    return int(r), int(g), int(b)


def overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend target colours over an RGB frame and outline every target.

    :param image: RGB ``uint8 (H, W, 3)``.
    :param label: ``(H, W)`` label image, pixel = target id, 0 = background.
    :returns: RGB ``uint8 (H, W, 3)``.
    """
    if label.shape != image.shape[:2]:
        raise ValueError(f"overlay: label {label.shape} does not match image {image.shape[:2]}")
    out = image.astype(np.float32)
    ids = [int(v) for v in np.unique(label) if v > 0]
    for tid in ids:
        mask = label == tid
        out[mask] = (1 - alpha) * out[mask] + alpha * np.array(colour_of(tid), np.float32)
    out = out.astype(np.uint8)
    for tid in ids:
        mask = (label == tid).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, colour_of(tid), 2)
    return out


def _resize_width(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def frame_label(frame: ClipFrame) -> str:
    """How the report names a frame: its position in the clip, and a bag frame's stamp beside it.

    A bag frame's ``name`` is its stamp in nanoseconds, which reads as a frame number ("frame
    1000000000") when shown alone.
    """
    if frame.stamp_ns is None:
        return str(frame.index)
    return f"{frame.index} (stamp {frame.stamp_ns / 1e9:.3f} s)"


@dataclass
class OverlayRecorder:
    """Keeps a few evenly spaced overlay thumbnails per sequence (JPEG bytes) and, optionally,
    writes every overlay frame to ``<video_dir>/<sequence>.mp4``.

    Use :meth:`on_frame` as the runner's frame callback; call :meth:`close` at the end.
    """

    per_sequence: int = 16
    width: int = 256
    video_dir: Path | None = None
    video_fps: float = 15.0
    #: per sequence: (:func:`frame_label`, JPEG bytes)
    thumbnails: dict[str, list[tuple[str, bytes]]] = field(default_factory=dict)
    videos: dict[str, Path] = field(default_factory=dict)
    _lengths: dict[str, int] = field(default_factory=dict)
    _writers: dict[str, cv2.VideoWriter] = field(default_factory=dict)

    def expect(self, sequence: str, length: int) -> None:
        """Say how many frames a sequence has, so thumbnails spread over all of it."""
        self._lengths[sequence] = length

    def on_frame(self, sequence: str, frame: ClipFrame, label: np.ndarray) -> None:
        if frame.image is None:
            return
        n = self._lengths.get(sequence, 0)
        wanted = self.video_dir is not None or self._chosen(frame.index, n)
        if not wanted:
            return
        over = overlay(frame.image, label)
        if self._chosen(frame.index, n):
            thumb = _resize_width(over, self.width)
            ok, jpg = cv2.imencode(
                ".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 75]
            )
            if ok:
                self.thumbnails.setdefault(sequence, []).append((frame_label(frame), jpg.tobytes()))
        if self.video_dir is not None:
            self._write_video(sequence, over)

    def _chosen(self, index: int, length: int) -> bool:
        if length <= 0:
            return index < self.per_sequence
        picks = np.unique(np.linspace(0, length - 1, min(self.per_sequence, length)).round())
        return index in set(int(p) for p in picks)

    def _write_video(self, sequence: str, frame_rgb: np.ndarray) -> None:
        writer = self._writers.get(sequence)
        if writer is None:
            folder = Path(self.video_dir or ".")
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{sequence}.mp4"
            h, w = frame_rgb.shape[:2]
            writer = cv2.VideoWriter(
                str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.video_fps, (w, h)
            )
            if not writer.isOpened():
                raise ValueError(f"cannot write video {path} (no MP4 encoder in this OpenCV)")
            self._writers[sequence] = writer
            self.videos[sequence] = path
        writer.write(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()
