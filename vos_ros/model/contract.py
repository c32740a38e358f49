"""The model contract: what any network must export to run inside :mod:`vos_ros.engine`.

A model is a folder ``models/<name>/`` with two ONNX graphs and a manifest ``model.yaml``.

``encoder.onnx`` runs once per frame, whatever the number of targets:

=========  ==========================  =====================================================
name       shape / dtype               meaning
=========  ==========================  =====================================================
image      [1, 3, H, W] float32        RGB, (x / 255 - mean) / std with the manifest's values;
                                       H and W multiples of ``STRIDE`` (32)
key        [1, KEY_DIM, H/8, W/8] f32  per-pixel embedding, L2-normalised over channels
f4         [1, C4, H/4, W/4] float32   skip features at 1/4 resolution
f8         [1, C8, H/8, W/8] float32   features at 1/8 resolution
=========  ==========================  =====================================================

``decoder.onnx`` runs once per frame for all N targets together (batch axis = target):

=========  ==========================  =====================================================
key        [1, KEY_DIM, H/8, W/8]      from the encoder (shared by all targets)
f4, f8     as above                    from the encoder (shared by all targets)
proto_fg   [N, P, KEY_DIM] float32     foreground prototypes of each target (from memory)
proto_bg   [N, P, KEY_DIM] float32     background prototypes of each target (from memory)
prev_mask  [N, 1, H/4, W/4] float32    previous soft mask of each target (optionally warped
                                       by optical flow and gated by the box prior), in [0, 1]
logits     [N, 1, H/4, W/4] float32    output: per-target foreground logit (one binary problem
                                       per target; the engine merges them by soft aggregation)
=========  ==========================  =====================================================

P (prototypes per target) is dynamic: the engine concatenates the prototypes of every frame in
memory (``PROTOS_PER_FRAME`` per frame), so a fixed memory budget keeps P, and the cost, flat.

Prototypes are computed by :func:`frame_prototypes` from a memory frame's ``key`` and the target's
soft mask at 1/8 resolution. Training computes them with the same function's torch twin
(``vos_ros.model.torch_prototypes``), so engine and training agree by construction; a test checks
the two give the same numbers.
"""

from __future__ import annotations

import itertools

import numpy as np

STRIDE = 32
KEY_STRIDE = 8
SKIP_STRIDE = 4
KEY_DIM = 64

ENCODER_INPUTS = ("image",)
ENCODER_OUTPUTS = ("key", "f4", "f8")
DECODER_INPUTS = ("key", "f4", "f8", "proto_fg", "proto_bg", "prev_mask")
DECODER_OUTPUTS = ("logits",)

# fg prototypes: 1 global masked mean + means over a FG_GRID x FG_GRID grid of the mask's box
FG_GRID = 2
# bg prototypes: 1 global masked mean + the heaviest cells of a BG_GRID x BG_GRID frame grid
BG_GRID = 3
PROTOS_PER_FRAME = FG_GRID * FG_GRID + 1  # fg and bg are padded to the same count
_EPS = 1e-6


def _masked_mean(key: np.ndarray, weight: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Weighted mean of key vectors (key: [C, h, w], weight: [h, w]); ``fallback`` if no weight."""
    total = float(weight.sum())
    if total < _EPS:
        return fallback
    return (key * weight[None]).reshape(key.shape[0], -1).sum(axis=1) / total


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _grid_edges(lo: int, hi: int, n: int) -> list[tuple[int, int]]:
    edges = np.linspace(lo, hi, n + 1).round().astype(int)
    return [(int(a), int(max(b, a + 1))) for a, b in itertools.pairwise(edges)]


def frame_prototypes(key: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background prototypes of one target in one memory frame.

    :param key: ``[KEY_DIM, h, w]`` float32, the encoder's ``key`` for the memory frame.
    :param prob: ``[h, w]`` float32 in [0, 1], the target's soft mask at key resolution.
    :returns: ``(fg, bg)``, each ``[PROTOS_PER_FRAME, KEY_DIM]`` float32, L2-normalised rows.
        fg = global masked mean, then masked means over a FG_GRID x FG_GRID grid of the mask's
        box (empty cells repeat the global mean). bg = global mean of (1 - prob), then the best
        PROTOS_PER_FRAME - 1 of the BG_GRID x BG_GRID cells of the whole frame, by background mass.
    """
    c, h, w = key.shape
    fg_w = prob.astype(np.float32)
    bg_w = 1.0 - fg_w
    zero = np.zeros(c, dtype=np.float32)
    fg_global = _masked_mean(key, fg_w, zero)
    bg_global = _masked_mean(key, bg_w, zero)

    fg = [fg_global]
    ys, xs = np.nonzero(fg_w > 0.5)
    if len(ys):
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    for ya, yb in _grid_edges(y0, y1, FG_GRID):
        for xa, xb in _grid_edges(x0, x1, FG_GRID):
            fg.append(_masked_mean(key[:, ya:yb, xa:xb], fg_w[ya:yb, xa:xb], fg_global))

    cells = []
    for ya, yb in _grid_edges(0, h, BG_GRID):
        for xa, xb in _grid_edges(0, w, BG_GRID):
            cw = bg_w[ya:yb, xa:xb]
            cells.append((float(cw.sum()), _masked_mean(key[:, ya:yb, xa:xb], cw, bg_global)))
    cells.sort(key=lambda item: -item[0])  # stable: equal masses keep grid order
    bg = [bg_global] + [v for _, v in cells[: PROTOS_PER_FRAME - 1]]
    return (
        _normalize(np.stack(fg).astype(np.float32)),
        _normalize(np.stack(bg).astype(np.float32)),
    )
