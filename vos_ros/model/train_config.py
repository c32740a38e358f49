"""The training run's settings (no torch import, so the CLI can show defaults cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _default_arch() -> dict[str, Any]:
    from vos_ros.model.network import DEFAULT_ARCH  # torch: only when a config is built

    return dict(DEFAULT_ARCH)


@dataclass
class TrainConfig:
    """Everything that defines a run; stored in every checkpoint."""

    data: str
    out: str
    steps: int = 8000
    batch: int = 4
    clip_len: int = 3
    crop_h: int = 160  # multiples of 32 (the encoder's stride)
    crop_w: int = 256
    store_h: int = 288  # frames are cached at this size, then scaled and cropped
    store_w: int = 512
    max_gap: int = 3  # frames between clip frames: 1..max_gap
    paste_prob: float = 0.4  # share of clips with a second, pasted target
    own_pred_prob: float = 0.5  # frames >= 2: previous mask = own prediction with this probability
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    device: str = "cpu"
    threads: int = 1
    seed: int = 0
    save_every_s: float = 180.0
    snapshot_every: int = 1000  # keep a numbered copy every this many steps
    log_every: int = 10
    cache_dir: str = ".carry/cache"
    # How memory prototypes are computed (vos_ros.model.contract.PROTOTYPE_SCHEMES); the export
    # writes it to the manifest so that the engine computes them the same way.
    prototype_scheme: str = "local-bg"
    # Start from the weights of this checkpoint or weights.pt (fresh optimizer and schedule);
    # ignored when the run resumes from its own last.pt.
    init: str | None = None
    # Train on these sequences of ``data`` only (cross-validation folds); None: all of them.
    sequences: list[str] | None = None
    arch: dict[str, Any] = field(default_factory=_default_arch)
