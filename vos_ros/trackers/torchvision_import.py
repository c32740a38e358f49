"""Import ``torchvision`` where its compiled operators cannot load.

EdgeTAM's RepViT image encoder is built by ``timm``, which imports ``torchvision`` for a few
pure-Python layers. PyPI publishes Linux builds of ``torchvision`` for CUDA torch only; beside a
CPU torch their compiled library (``torchvision._C``: nms, roi_align, ...) does not load, and the
import then stops while registering shape functions for ``nms`` and ``qnms``, the only two that
``torchvision`` registers without checking that its operators loaded. Declaring those two
schemas (without kernels) lets the rest of the package import. Nothing EdgeTAM runs calls
them; a caller that does gets torchvision's own "Couldn't load custom C++ ops" error,
which is true of this build.

Where ``torchvision`` imports normally (a build that matches the installed torch) this does
nothing.
"""

from __future__ import annotations

import sys

# Kept for the life of the process: the declarations vanish when the Library is collected.
_declared: list = []

# The operators torchvision's shape registrations need declared, with its own schemas.
_UNGUARDED_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def import_torchvision() -> None:
    """Import ``torchvision`` once, declaring its two unguarded operators when its compiled
    library did not load.

    :raises ImportError: ``torchvision`` is not installed.
    :raises RuntimeError: it fails to import for another reason.
    """
    try:
        import torchvision

        return
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or _declared:
            raise
    # The failed import left half-initialised modules behind; import again from scratch.
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]
    import torch

    library = torch.library.Library("torchvision", "DEF")
    for schema in _UNGUARDED_SCHEMAS:
        library.define(schema)
    _declared.append(library)
    import torchvision  # noqa: F401
