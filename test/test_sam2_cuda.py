"""The sam2 family with torch on a CUDA GPU: fp16 and bf16 against fp32, per frame and target
IoU >= 0.98 (the bar the TensorRT engines meet too), with 1 and 3 targets, for SAM 2.1-tiny and
EdgeTAM (at the small input of test_edgetam.py).

Skipped without a CUDA GPU (this project's CI has none); ``scripts/device_checks.sh`` runs it
on a lent one. Seeded random weights in the official checkpoint format stand in for the real
ones (sam2_testlib).
"""

from __future__ import annotations

import pytest
from edgetam_testlib import small_edgetam  # noqa: F401  (pytest fixture)
from sam2_testlib import engine_against_cuda_fp32, sam2_checkpoint  # noqa: F401  (pytest fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _cuda_reason() -> str | None:
    try:
        import torch
    except ImportError:
        return "needs torch"
    return None if torch.cuda.is_available() else "needs a CUDA GPU"


@pytest.fixture(scope="module")
def sam2_folder(sam2_checkpoint, tmp_path_factory):  # noqa: F811
    from vos_ros.pretrained.install import fetch_model

    root = tmp_path_factory.mktemp("sam2_cuda")
    return str(fetch_model("sam2.1-hiera-tiny", root, checkpoint=sam2_checkpoint, quiet=True))


@pytest.mark.skipif(_cuda_reason() is not None, reason=str(_cuda_reason()))
@pytest.mark.parametrize("model", ["sam2_folder", "small_edgetam"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("targets", [1, 3])
def test_cuda_low_precision_matches_fp32(request, model, precision, targets):
    folder = request.getfixturevalue(model)
    settings = {"backend": "torch", "device": "cuda", "precision": precision}
    low = engine_against_cuda_fp32(folder, targets, **settings)
    assert low.backend_name == f"torch-cuda-{precision}"
