"""Shapes and properties of the network against the model contract."""

from __future__ import annotations

import pytest
import torch

from vos_ros.model import contract
from vos_ros.model.network import DEFAULT_ARCH, build_network


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return build_network().eval()


def test_encoder_shapes_and_unit_keys(net):
    key, f4, f8 = net.encoder(torch.randn(1, 3, 96, 160))
    assert key.shape == (1, contract.KEY_DIM, 12, 20)
    assert f4.shape == (1, DEFAULT_ARCH["skip"], 24, 40)
    assert f8.shape == (1, DEFAULT_ARCH["fpn"], 12, 20)
    torch.testing.assert_close(key.norm(dim=1), torch.ones(1, 12, 20), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("n", "p"), [(1, 5), (3, 15)])
def test_decoder_shapes_for_any_target_and_prototype_count(net, n, p):
    with torch.no_grad():
        key, f4, f8 = net.encoder(torch.randn(1, 3, 64, 96))
        protos = torch.nn.functional.normalize(torch.randn(n, p, contract.KEY_DIM), dim=-1)
        logits = net.decoder(key, f4, f8, protos, protos.flip(1), torch.rand(n, 1, 16, 24))
    assert logits.shape == (n, 1, 16, 24)
    assert torch.isfinite(logits).all()


def test_decoder_targets_are_independent(net):
    """Batch axis = target: a target's logits do not depend on the other targets."""
    with torch.no_grad():
        key, f4, f8 = net.encoder(torch.randn(1, 3, 64, 64))
        fg = torch.nn.functional.normalize(torch.randn(2, 5, contract.KEY_DIM), dim=-1)
        bg = torch.nn.functional.normalize(torch.randn(2, 5, contract.KEY_DIM), dim=-1)
        prev = torch.rand(2, 1, 16, 16)
        both = net.decoder(key, f4, f8, fg, bg, prev)
        first = net.decoder(key, f4, f8, fg[:1], bg[:1], prev[:1])
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-5)


def test_build_network_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown architecture key"):
        build_network({"widht": 3})
