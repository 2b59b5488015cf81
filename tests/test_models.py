"""The backbone: the strided 1x1 shortcut's replacement, and every configured network shape
trained one step in a subprocess (a native crash in oneDNN kills a process, not a test)."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import REPO, compose_config
from medmap.models import PointwiseStridedConv, SmallImageResNet18
from medmap.runtime.devices import trains_in_bf16


@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_strided_conv_matches_a_strided_1x1_convolution(channels_last):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 12, 1, stride=2, bias=False)
    replacement = PointwiseStridedConv(6, 12, stride=2)
    replacement.load_state_dict(reference.state_dict())  # the same weight, the same key
    x = torch.randn(3, 6, 9, 9)  # odd size: the last row and column are kept, as stride 2 does
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    inputs = [x.clone().requires_grad_() for _ in range(2)]
    outputs = [reference(inputs[0]), replacement(inputs[1])]
    assert outputs[1].shape == (3, 12, 5, 5)
    torch.testing.assert_close(outputs[1], outputs[0])
    for output in outputs:
        (output * torch.arange(output.numel()).reshape(output.shape)).sum().backward()
    # gradients of size ~1e3: kernels may sum in another order (float32)
    torch.testing.assert_close(inputs[1].grad, inputs[0].grad, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(replacement.weight.grad, reference.weight.grad, rtol=1e-5, atol=1e-3)


def test_the_backbone_has_no_strided_1x1_convolution_and_keeps_its_checkpoint_keys():
    network = SmallImageResNet18(8)
    strided = [
        name
        for name, module in network.named_modules()
        if isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and module.stride != (1, 1)
    ]
    assert strided == []
    keys = set(network.state_dict())
    assert "stages.2.shortcut.0.weight" in keys and "stages.2.shortcut.1.running_mean" in keys


def test_a_stem_stride_of_2_quarters_the_flops_and_keeps_the_feature_size():
    from medmap.benchmark import step_flops

    images = torch.randn(4, 3, 28, 28)
    flops = {}
    for stride in (1, 2):
        network = SmallImageResNet18(8, stem_stride=stride)
        assert network(images).shape == (4, 64)
        flops[stride] = step_flops(lambda network=network: network(images).sum().backward())
    assert 0.2 < flops[2] / flops[1] < 0.3  # maps of 14 instead of 28 px from the stem on
    with pytest.raises(ValueError, match="stem_stride must be 1 or 2"):
        SmallImageResNet18(8, stem_stride=3)


STEP_PROBE = """
import sys, torch
from medmap.models import SmallImageResNet18
channels_last, bf16 = sys.argv[1] == "True", sys.argv[2] == "True"
for width in (8, 16, 64):
    for size in (28, 64, 96):
        print(f"width {width} at {size} px", flush=True)
        torch.manual_seed(0)
        network = SmallImageResNet18(width)
        images = torch.randn(4, 3, size, size)
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        for _ in range(2):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                network(images).float().sum().backward()
print("all shapes ran", flush=True)
"""


def test_every_configured_network_shape_trains_a_step_without_a_native_crash():
    """Widths 8 (smoke), 16 (cpu), 64 (paper) at 28, 64 and 96 px, forward and backward, in the
    memory format and precision ``train.py`` chooses on this machine. glibc's MALLOC_CHECK_=3
    turns heap corruption (the AVX-512 oneDNN bug of a strided 1x1 backward) into an abort at
    once, and the last line printed names the shape that crashed."""
    cfg = compose_config([])
    channels_last, bf16 = bool(cfg.model.channels_last), trains_in_bf16(cfg.trainer)
    probe = subprocess.run(
        [sys.executable, "-c", STEP_PROBE, str(channels_last), str(bf16)],
        cwd=REPO,
        env={**os.environ, "MALLOC_CHECK_": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = probe.stdout.strip().splitlines()
    assert probe.returncode == 0 and lines[-1] == "all shapes ran", (
        f"exit {probe.returncode} (channels_last={channels_last}, bf16={bf16}) during "
        f"{lines[-1] if lines else 'start-up'}: {probe.stderr[-2000:]}"
    )
