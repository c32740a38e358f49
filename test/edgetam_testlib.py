"""EdgeTAM test fixtures: seeded random weights in transformers' format (``model.safetensors``
for ``EdgeTamVideoModel``), and the library's own streaming session as the reference.

As for SAM 2 (sam2_testlib), the library's default initialisation gives near-constant logits,
which a reproduction could match without running the right computation; every weight matrix is
drawn from N(0, 1 / fan_in) instead (memory attention larger, see MEMORY_GAIN), and the tests
check that the masks differ per target.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SEED = 20261207
# Random memory attention barely changes the image features, so targets prompted with different
# masks got nearly the same logits; drawn 5x larger, the memory separates them far beyond the
# tests' tolerance (test_engine_gives_the_library_streaming_session_logits checks it).
MEMORY_GAIN = 5.0


SMALL = 256  # model input of the small config; feature maps 16 x 16


def small_config():
    """EdgeTAM at a 256 x 256 input: the same networks and memory settings as at 1024, with
    16 x 16 instead of 64 x 64 feature maps, so a full memory is reached in seconds on a CPU."""
    from transformers import EdgeTamVideoConfig

    default = EdgeTamVideoConfig()
    side = SMALL // 16
    vision = default.vision_config.to_dict()
    vision["backbone_feature_sizes"] = [[4 * side] * 2, [2 * side] * 2, [side] * 2]
    prompt = {**default.prompt_encoder_config.to_dict(), "image_size": SMALL}
    return EdgeTamVideoConfig(
        image_size=SMALL,
        memory_attention_rope_feat_sizes=[side, side],
        vision_config=vision,
        prompt_encoder_config=prompt,
    )


def published_config():
    """EdgeTAM as published: RepViT image encoder (built by timm) in front of its memory."""
    from transformers import EdgeTamVideoConfig
    from transformers.models.edgetam.configuration_edgetam import EdgeTamVisionConfig

    return EdgeTamVideoConfig(vision_config=EdgeTamVisionConfig())


def random_weights(path: Path, config=None, seed: int = SEED) -> Path:
    """Write EdgeTAM's ``model.safetensors`` (``config``: transformers' EdgeTAM by default)
    with seeded N(0, 1/fan_in) matrices."""
    import torch
    from safetensors.torch import save_file
    from transformers import EdgeTamVideoConfig, EdgeTamVideoModel

    torch.manual_seed(seed)
    state = EdgeTamVideoModel(config or EdgeTamVideoConfig()).state_dict()
    generator = torch.Generator().manual_seed(seed)
    for name, tensor in state.items():
        if tensor.is_floating_point() and tensor.ndim >= 2:
            fan_in = tensor[0].numel()
            scale = MEMORY_GAIN if name.startswith("memory_attention.layers") else 1.0
            tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale / fan_in**0.5)
    # safetensors refuses tensors that share memory (tied weights): save contiguous copies
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    return path


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
    # need torchvision for its image processors, which the project does not install.
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


def write_random_model(folder: Path, published: bool = True) -> Path:
    """``config.json`` and random ``model.safetensors`` in ``folder`` as the hub lays them out
    (``published``: EdgeTAM's RepViT config, which needs timm and torchvision; else the port's
    default settings); returns the weights' path for ``fetch-model edgetam --checkpoint``."""
    from transformers import EdgeTamVideoConfig

    folder.mkdir(parents=True, exist_ok=True)
    config = published_config() if published else EdgeTamVideoConfig()
    (folder / "config.json").write_text(config.to_json_string())
    return random_weights(folder / "model.safetensors", config)


def small_model_folder(folder: Path) -> str:
    """A sam2-family model folder of EdgeTAM at the small input, as fetch-model lays one out."""
    import yaml

    from vos_ros.pretrained.download import sha256_of

    folder.mkdir(parents=True)
    config = small_config()
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


def require_edgetam() -> None:
    pytest.importorskip("transformers", reason="EdgeTAM needs transformers (scripts/setup.sh)")


@pytest.fixture(scope="session")
def small_edgetam(tmp_path_factory) -> str:
    require_edgetam()
    return small_model_folder(tmp_path_factory.mktemp("edgetam_small") / "edgetam-small")


@pytest.fixture(scope="session")
def edgetam_weights(tmp_path_factory) -> Path:
    """``model.safetensors`` with its ``config.json`` beside it, as the hub publishes them, of
    transformers' default EdgeTAM settings (the published config's RepViT encoder needs timm
    and torchvision, which this project does not install)."""
    require_edgetam()
    return write_random_model(tmp_path_factory.mktemp("edgetam"), published=False)
