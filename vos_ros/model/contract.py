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

The decoder must also accept crops: on CPUs the engine decodes each visible target on a window
around it (``vos_ros.engine.window``), feeding the same H/8 x W/8 (key, f8) and H/4 x W/4 (f4,
prev_mask) region of every input. A fully convolutional decoder does so by construction.

P (prototypes per target) is dynamic: the engine concatenates the prototypes of every frame in
memory (``PROTOS_PER_FRAME`` per frame), so a fixed memory budget keeps P, and the cost, flat.

Prototypes are computed by :func:`frame_prototypes` from a memory frame's ``key`` and the target's
soft mask at 1/8 resolution, following the manifest's ``contract.prototype_scheme`` (a network
learns the statistics of one scheme, so the engine must use the same). Training computes them with
the function's torch twin (``vos_ros.model.torch_prototypes``), so engine and training agree by
construction; a test checks the two give the same numbers.
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
# bg prototypes, scheme "frame-grid": 1 global masked mean + the heaviest cells of a
# BG_GRID x BG_GRID grid over the whole frame (the cells farthest from the object win).
BG_GRID = 3
# bg prototypes, scheme "local-bg": 1 global masked mean + the background around the object, as
# masked means over a 2x2 grid of the object's box enlarged LOCAL_BG_SCALE times. The object
# leaks into its surroundings, not into the far corners, so these are the prototypes the decoder
# needs to tell the two apart.
LOCAL_BG_GRID = 2
LOCAL_BG_SCALE = 2.0
PROTOTYPE_SCHEMES = ("frame-grid", "local-bg")
DEFAULT_PROTOTYPE_SCHEME = "local-bg"  # what new training runs use
LEGACY_PROTOTYPE_SCHEME = "frame-grid"  # a manifest without contract.prototype_scheme
PROTOS_PER_FRAME = FG_GRID * FG_GRID + 1  # fg and bg are padded to the same count
_EPS = 1e-6


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def _grid_edges(lo: int, hi: int, n: int) -> list[tuple[int, int]]:
    """``n`` cells splitting ``[lo, hi)``, each at least one pixel wide."""
    # np.linspace(lo, hi, n + 1).round() in plain Python (same arithmetic, same half-to-even
    # rounding), 10x cheaper for these few numbers.
    step = (hi - lo) / n
    edges = [round(i * step + lo) for i in range(n)] + [hi]
    return [(a, max(b, a + 1)) for a, b in itertools.pairwise(edges)]


def check_prototype_scheme(scheme: str) -> str:
    if scheme not in PROTOTYPE_SCHEMES:
        raise ValueError(
            f"unknown prototype scheme {scheme!r}; known: {', '.join(PROTOTYPE_SCHEMES)}"
        )
    return scheme


def local_bg_cells(
    box: tuple[int, int, int, int], h: int, w: int
) -> list[tuple[int, int, int, int]]:
    """Cells ``(ya, yb, xa, xb)`` of the "local-bg" scheme: a LOCAL_BG_GRID x LOCAL_BG_GRID grid
    over the object's box ``(y0, y1, x0, x1)`` enlarged LOCAL_BG_SCALE times, clipped to the map."""
    y0, y1, x0, x1 = box
    cy, cx = (y0 + y1) / 2.0, (x0 + x1) / 2.0
    half_h = max(2.0, (y1 - y0) * LOCAL_BG_SCALE / 2.0)
    half_w = max(2.0, (x1 - x0) * LOCAL_BG_SCALE / 2.0)
    ey0, ey1 = max(0, int(cy - half_h)), min(h, int(np.ceil(cy + half_h)))
    ex0, ex1 = max(0, int(cx - half_w)), min(w, int(np.ceil(cx + half_w)))
    return [
        (ya, yb, xa, xb)
        for ya, yb in _grid_edges(ey0, ey1, LOCAL_BG_GRID)
        for xa, xb in _grid_edges(ex0, ex1, LOCAL_BG_GRID)
    ]


def frame_prototypes(
    key: np.ndarray, prob: np.ndarray, scheme: str = DEFAULT_PROTOTYPE_SCHEME
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background prototypes of one target in one memory frame.

    :param key: ``[KEY_DIM, h, w]`` float32, the encoder's ``key`` for the memory frame.
    :param prob: ``[h, w]`` float32 in [0, 1], the target's soft mask at key resolution.
    :param scheme: one of PROTOTYPE_SCHEMES (the model's manifest says which).
    :returns: ``(fg, bg)``, each ``[PROTOS_PER_FRAME, KEY_DIM]`` float32, L2-normalised rows.
        fg = global masked mean, then masked means over a FG_GRID x FG_GRID grid of the mask's
        box (empty cells repeat the global mean). bg = global mean of (1 - prob), then
        PROTOS_PER_FRAME - 1 masked means of (1 - prob): "local-bg", over the cells of
        :func:`local_bg_cells`; "frame-grid", over the BG_GRID x BG_GRID cells of the whole frame
        with the most background mass.
    """
    check_prototype_scheme(scheme)
    c, h, w = key.shape
    fg_w = prob.astype(np.float32)
    bg_w = 1.0 - fg_w
    ys, xs = np.nonzero(fg_w > 0.5)
    if len(ys):
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    fg_cells = [
        (ya, yb, xa, xb)
        for ya, yb in _grid_edges(y0, y1, FG_GRID)
        for xa, xb in _grid_edges(x0, x1, FG_GRID)
    ]
    if scheme == "local-bg":
        bg_cells = local_bg_cells((y0, y1, x0, x1), h, w)
    else:  # the heaviest background cells of the frame grid; stable: equal masses keep grid order
        grid = [
            (ya, yb, xa, xb)
            for ya, yb in _grid_edges(0, h, BG_GRID)
            for xa, xb in _grid_edges(0, w, BG_GRID)
        ]
        mass = [float(bg_w[ya:yb, xa:xb].sum()) for ya, yb, xa, xb in grid]
        order = sorted(range(len(grid)), key=lambda i: -mass[i])
        bg_cells = [grid[i] for i in order[: PROTOS_PER_FRAME - 1]]

    # Every masked mean in one matrix product: one weight map per prototype (the global fg and
    # bg weights, then each cell's weights with zeros around it) times the key; 0.54 -> 0.18 ms
    # per memory write against ten separate means
    # (docs/benchmarks.md, "Changes of 2026-12-02, third round").
    whole = (0, h, 0, w)
    regions = [(fg_w, whole), (bg_w, whole)]
    regions += [(fg_w, cell) for cell in fg_cells] + [(bg_w, cell) for cell in bg_cells]
    weights = np.zeros((len(regions), h, w), np.float32)
    totals = np.empty(len(regions), np.float64)
    for row, (weight, (ya, yb, xa, xb)) in enumerate(regions):
        weights[row, ya:yb, xa:xb] = weight[ya:yb, xa:xb]
        totals[row] = float(weight[ya:yb, xa:xb].sum())
    sums = (key.reshape(c, -1) @ weights.reshape(len(regions), -1).T).T  # [regions, C]
    means = sums / np.maximum(totals, _EPS)[:, None].astype(np.float32)
    # A region without weight falls back: the global means to 0, the cells to their global mean.
    empty = totals < _EPS
    fg_rows, bg_rows = slice(2, 2 + len(fg_cells)), slice(2 + len(fg_cells), None)
    means[:2][empty[:2]] = 0.0
    means[fg_rows][empty[fg_rows]] = means[0]
    means[bg_rows][empty[bg_rows]] = means[1]
    fg = np.concatenate([means[:1], means[fg_rows]])
    bg = np.concatenate([means[1:2], means[bg_rows]])
    return _normalize(fg), _normalize(bg)
