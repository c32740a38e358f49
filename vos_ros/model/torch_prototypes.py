"""Torch twin of :func:`vos_ros.model.contract.frame_prototypes`, differentiable w.r.t. ``key``.

Training computes memory prototypes with this function so that the network learns exactly the
prototypes the engine will feed it. The region choices (mask box, background cell ranking) depend
only on the mask, which carries no gradient; the masked means are differentiable in ``key``.
``test/test_model_prototypes.py`` checks that both functions give the same numbers.
"""

from __future__ import annotations

import torch

from vos_ros.model.contract import (
    BG_GRID,
    DEFAULT_PROTOTYPE_SCHEME,
    FG_GRID,
    PROTOS_PER_FRAME,
    check_prototype_scheme,
    local_bg_cells,
)
from vos_ros.model.contract import _grid_edges as grid_edges  # same cells as the engine, by design

_EPS = 1e-6


def _masked_mean(key: torch.Tensor, weight: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    total = float(weight.sum())
    if total < _EPS:
        return fallback
    return (key * weight[None]).flatten(1).sum(dim=1) / total


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / torch.clamp(torch.linalg.vector_norm(v, dim=-1, keepdim=True), min=_EPS)


def frame_prototypes_torch(
    key: torch.Tensor, prob: torch.Tensor, scheme: str = DEFAULT_PROTOTYPE_SCHEME
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground and background prototypes of one target in one memory frame.

    :param key: ``[KEY_DIM, h, w]`` float32 (gradients flow through it).
    :param prob: ``[h, w]`` float32 in [0, 1] at key resolution (treated as a constant).
    :returns: ``(fg, bg)``, each ``[PROTOS_PER_FRAME, KEY_DIM]``, L2-normalised rows, in the same
        order as the numpy :func:`~vos_ros.model.contract.frame_prototypes`.
    """
    check_prototype_scheme(scheme)
    c, h, w = key.shape
    fg_w = prob.detach().to(key.dtype)
    bg_w = 1.0 - fg_w
    zero = key.new_zeros(c)
    fg_global = _masked_mean(key, fg_w, zero)
    bg_global = _masked_mean(key, bg_w, zero)

    fg = [fg_global]
    ys, xs = torch.nonzero(fg_w > 0.5, as_tuple=True)
    if len(ys):
        y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    else:
        y0, y1, x0, x1 = 0, h, 0, w
    for ya, yb in grid_edges(y0, y1, FG_GRID):
        for xa, xb in grid_edges(x0, x1, FG_GRID):
            fg.append(_masked_mean(key[:, ya:yb, xa:xb], fg_w[ya:yb, xa:xb], fg_global))

    if scheme == "local-bg":
        bg = [bg_global] + [
            _masked_mean(key[:, ya:yb, xa:xb], bg_w[ya:yb, xa:xb], bg_global)
            for ya, yb, xa, xb in local_bg_cells((y0, y1, x0, x1), h, w)
        ]
    else:
        cells = []
        for ya, yb in grid_edges(0, h, BG_GRID):
            for xa, xb in grid_edges(0, w, BG_GRID):
                cw = bg_w[ya:yb, xa:xb]
                cells.append((float(cw.sum()), _masked_mean(key[:, ya:yb, xa:xb], cw, bg_global)))
        cells.sort(key=lambda item: -item[0])  # stable, like the numpy version
        bg = [bg_global] + [v for _, v in cells[: PROTOS_PER_FRAME - 1]]
    return _normalize(torch.stack(fg)), _normalize(torch.stack(bg))
