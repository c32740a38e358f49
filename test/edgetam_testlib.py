"""EdgeTAM test fixtures: seeded random weights in transformers' format (``model.safetensors``
for ``EdgeTamVideoModel``), and the library's own streaming session as the reference.

As for SAM 2 (sam2_testlib), the library's default initialisation gives near-constant logits,
which a reproduction could match without running the right computation; every weight matrix is
drawn from N(0, 1 / fan_in) instead (memory attention larger, see MEMORY_GAIN), and the tests
check that the masks differ per target. The image encoder is RepViT, as published (or the port's
default Hiera); RepViT's BatchNorm statistics and the object-score head are set as training
would leave them (see random_weights).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vos_ros.trackers.edgetam_library import require_transformers

SEED = 20261207
# Random memory attention barely changes the image features, so targets prompted with different
# masks got nearly the same logits; drawn 5x larger, the memory separates them far beyond the
# tests' tolerance (test_engine_gives_the_library_streaming_session_logits checks it).
MEMORY_GAIN = 5.0
OBJECT_SCORE_BIAS = 2.0


SMALL = 256  # model input of the small config; feature maps 16 x 16

# EdgeTAM's published image encoder: timm's RepViT-M1 as a four-level feature pyramid, wrapped
# by transformers (the library's own default names no architecture timm knows).
REPVIT = {
    "model_type": "timm_wrapper",
    "architecture": "repvit_m1.dist_in1k",
    "num_classes": 1000,
    "do_pooling": False,
    "model_args": {"in_chans": 3, "features_only": True, "out_indices": [0, 1, 2, 3]},
}


def _vision_config(encoder: str, side: int) -> dict:
    """The image encoder's settings for ``side`` x ``side`` feature maps at the coarsest level:
    ``repvit`` as published, or ``hiera`` (the port's default, SAM 2's encoder)."""
    from transformers import EdgeTamVideoConfig
    from transformers.models.edgetam.configuration_edgetam import EdgeTamVisionConfig

    sizes = [[4 * side] * 2, [2 * side] * 2, [side] * 2]
    if encoder == "repvit":
        return EdgeTamVisionConfig(backbone_config=REPVIT, backbone_feature_sizes=sizes).to_dict()
    if encoder == "hiera":
        return {**EdgeTamVideoConfig().vision_config.to_dict(), "backbone_feature_sizes": sizes}
    raise ValueError(f"encoder: {encoder!r} (repvit or hiera)")


def small_config(encoder: str = "repvit"):
    """EdgeTAM at a 256 x 256 input: the same networks and memory settings as at 1024, with
    16 x 16 instead of 64 x 64 feature maps, so a full memory is reached in seconds on a CPU."""
    require_transformers()
    from transformers import EdgeTamVideoConfig

    side = SMALL // 16
    prompt = {**EdgeTamVideoConfig().prompt_encoder_config.to_dict(), "image_size": SMALL}
    return EdgeTamVideoConfig(
        image_size=SMALL,
        memory_attention_rope_feat_sizes=[side, side],
        vision_config=_vision_config(encoder, side),
        prompt_encoder_config=prompt,
    )


def published_config(encoder: str = "repvit"):
    """EdgeTAM at its published 1024 x 1024 input (``encoder``: see :func:`small_config`)."""
    require_transformers()
    from transformers import EdgeTamVideoConfig

    return EdgeTamVideoConfig(vision_config=_vision_config(encoder, 64))


def random_weights(path: Path, config=None, seed: int = SEED) -> Path:
    """Write EdgeTAM's ``model.safetensors`` (``config``: transformers' EdgeTAM by default)
    with seeded N(0, 1/fan_in) matrices, BatchNorm statistics of random images and an
    object-score head that sees the target (both below)."""
    require_transformers()
    import torch
    from safetensors.torch import save_file
    from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

    torch.manual_seed(seed)
    config = config or EdgeTamVideoConfig()
    model = EdgeTamVideoModel(config)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            scale = MEMORY_GAIN if name.startswith("memory_attention.layers") else 1.0
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale / fan_in**0.5)
    _calibrate_batch_norms(model, config.image_size, generator)
    # A random object-score head calls the target absent about half the time, and every frame
    # then gives the same constant logits; a trained model sees the target it was prompted with.
    state["mask_decoder.pred_obj_score_head.proj_out.bias"].fill_(OBJECT_SCORE_BIAS)
    # safetensors refuses tensors that share memory (tied weights): save contiguous copies
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    return path


def _calibrate_batch_norms(model, side: int, generator) -> None:
    """Give the image encoder's BatchNorm layers (RepViT has them, Hiera has none) the running
    statistics of random images, as training would. With a fresh model's statistics (mean 0,
    variance 1) random weights grow the activations about tenfold per stage (1e6 at RepViT's
    last), and the image features then drown what the memory adds."""
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration batch
    images = torch.randn(2, 3, side, side, generator=generator)
    model.vision_encoder.train()
    with torch.no_grad():
        model.vision_encoder(images)
    model.eval()


def reference_run(
    model, pixel_values: list, prompts: dict[int, tuple[list[int], dict]], start: int = 0
) -> list:
    """The library's own streaming session with every target in it, one frame at a time.

    :param prompts: frame index -> ``(object ids, keyword arguments of the processor's
        add_inputs_to_inference_session)``, e.g. ``{0: ([1, 2], {"input_masks": [m1, m2]})}``
        (one call per frame: the session marks only the last call's objects as prompted).
    :param start: index of the first frame of ``pixel_values`` in the stream.
    :returns: per frame ``{id: [1, 1, S/4, S/4] logits}`` of the targets in the session.
    """
    import torch
    from transformers.models.edgetam_video.modeling_edgetam_video import (
        EdgeTamVideoInferenceSession,
    )
    from transformers.models.sam2_video.processing_sam2_video import Sam2VideoProcessor

    # The processor's prompt methods use only these two settings; building it in full would
    # build its image and video processors too, which these runs do not use.
    processor = Sam2VideoProcessor.__new__(Sam2VideoProcessor)
    processor.target_size = model.config.image_size
    processor.point_pad_value = -10
    session = EdgeTamVideoInferenceSession(dtype=torch.float32)
    out = []
    with torch.inference_mode():
        for index, image in enumerate(pixel_values, start=start):
            if index in prompts:
                ids, inputs = prompts[index]
                # a copy: the session empties the list it is given as objects are stepped
                processor.add_inputs_to_inference_session(
                    session, frame_idx=index, obj_ids=list(ids), **inputs
                )
            result = model(inference_session=session, frame=image[0], frame_idx=index)
            out.append(
                {
                    target_id: result.pred_masks[row : row + 1].float().clone()
                    for row, target_id in enumerate(result.object_ids)
                }
            )
    return out


def write_random_model(folder: Path, encoder: str = "repvit") -> Path:
    """``config.json`` and random ``model.safetensors`` of EdgeTAM at 1024 x 1024 in ``folder``
    as the hub lays them out (``encoder``: see :func:`small_config`); returns the weights' path
    for ``fetch-model edgetam --checkpoint``."""
    folder.mkdir(parents=True, exist_ok=True)
    config = published_config(encoder)
    (folder / "config.json").write_text(config.to_json_string())
    return random_weights(folder / "model.safetensors", config)


def small_model_folder(folder: Path, encoder: str = "repvit") -> str:
    """A sam2-family model folder of EdgeTAM at the small input, as fetch-model lays one out
    (``encoder``: see :func:`small_config`)."""
    import yaml

    from vos_ros.pretrained.download import sha256_of

    folder.mkdir(parents=True)
    config = small_config(encoder)
    (folder / "config.json").write_text(config.to_json_string())
    random_weights(folder / "model.safetensors", config)
    files = {
        name: {"sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
        for name in ("model.safetensors", "config.json")
    }
    manifest = {
        "format_version": 1,
        "family": "sam2",
        "architecture": "edgetam",
        "name": "edgetam-small",
        "config": "config.json",
        "checkpoint": "model.safetensors",
        "files": files,
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return str(folder)


def require_edgetam(encoder: str = "repvit") -> None:
    """Skip without transformers, or without timm where ``encoder`` is RepViT."""
    pytest.importorskip("transformers", reason="EdgeTAM needs transformers (scripts/setup.sh)")
    if encoder == "repvit":
        require_transformers()  # makes torchvision importable first
        pytest.importorskip("timm", reason="EdgeTAM's RepViT needs timm (scripts/setup.sh)")


@pytest.fixture(scope="session")
def small_edgetam(tmp_path_factory) -> str:
    """EdgeTAM as published (RepViT encoder) at the small input."""
    require_edgetam()
    return small_model_folder(tmp_path_factory.mktemp("edgetam_small") / "edgetam-small")


@pytest.fixture(scope="session")
def small_edgetam_hiera(tmp_path_factory) -> str:
    """EdgeTAM with the port's default image encoder (SAM 2's Hiera) at the small input."""
    require_edgetam("hiera")
    folder = tmp_path_factory.mktemp("edgetam_hiera") / "edgetam-small-hiera"
    return small_model_folder(folder, "hiera")


@pytest.fixture(scope="session")
def edgetam_weights(tmp_path_factory) -> Path:
    """``model.safetensors`` of EdgeTAM as published, at 1024 x 1024, with its ``config.json``
    beside it, as the hub publishes them."""
    require_edgetam()
    return write_random_model(tmp_path_factory.mktemp("edgetam"))
