"""The study's networks for small images (MNIST, Colored-MNIST), any input shape.

Layer lists follow the original ObfNet Keras code (github ntu-aiot/ObfNet,
``mnist/main.py``): 3x3 convolutions with valid padding, ReLU activations, logits out
(Keras' softmax + categorical cross-entropy is the same objective as logits + CE here).
A ReLU followed by max-pooling runs here as pooling then ReLU: the two commute (ReLU is
monotonic), so values and gradients are the same, and the ReLU and its backward pass touch
a quarter of the elements (ObfNet training through InfNet-CNN 4-9% faster, interleaved A/B).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from obfaudit.models._registry import Role, register_model

Shape = tuple[int, int, int]


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory layout for the convolutions and max-pooling that follow.

    On CPU, PyTorch's NCHW max-pool kernel is ~18x slower than its channels-last one
    (19 ms vs 1 ms for a batch of 128x64x24x24 here); with bfloat16 autocast this layout
    doubles ObfNet training speed (see benchmarks/train_speed.py). The values and the
    logical (N, C, H, W) order are unchanged.
    """
    return x.contiguous(memory_format=torch.channels_last)


class _ChannelsLastGrad(torch.autograd.Function):
    """Identity whose backward hands on the gradient in channels-last layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class Flatten(nn.Flatten):
    """``nn.Flatten`` (same values, same NCHW order) for channels-last feature maps.

    Flattening gives an NCHW-ordered gradient; the max-pool before it, whose input is
    channels-last, then converted that input and its own result between layouts in every
    backward pass (~10 ms per batch of 128 in InfNet-CNN). Handing the gradient back
    channels-last costs one small copy instead: 15-25% off an InfNet-CNN step here.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.requires_grad:
            x = _ChannelsLastGrad.apply(x)
        return super().forward(x)


def _check_noise(noise: float) -> float:
    if not (isinstance(noise, int | float) and not isinstance(noise, bool) and 0 <= noise < 1e6):
        raise ValueError(f"noise must be a number between 0 and 1e6, got {noise!r}")
    return float(noise)


class Obfuscator(nn.Module):
    """Base for obfuscators: :meth:`obfuscate` is what the edge device transmits.

    ``noise`` > 0 adds Gaussian noise of that scale to every output, in training and at
    inference (the noise defence, :mod:`obfaudit.defences.noise`).
    """

    input_shape: Shape
    output_shape: Shape
    noise: float = 0.0

    def obfuscate(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def _send(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.noise * torch.randn_like(z) if self.noise else z


class InfNetCNN(nn.Module):
    """Conv(32) -> Conv(64) -> MaxPool(2) -> Dropout(.25) -> Dense(128) -> Dropout(.5) -> Dense.

    ReLU after each convolution and the first dense layer (the second conv's after its pooling).
    """

    def __init__(self, input_shape: Shape, classes: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = tuple(input_shape)
        self.features = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Dropout(0.25),
            Flatten(),
        )
        flat = 64 * ((h - 4) // 2) * ((w - 4) // 2)
        self.head = nn.Sequential(nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, classes))
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(channels_last(x)))


class InfNetMLP(nn.Module):
    """Flatten -> Dense(512) x 3 -> Dense(classes). ColorNet is this with k colour outputs."""

    def __init__(self, input_shape: Shape, classes: int, width: int = 512) -> None:
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_numel(input_shape), width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ObfNetMLP(Obfuscator):
    """Flatten -> Dense(N) -> Dense(prod(output_shape), ReLU) -> reshape.

    ``output_shape`` defaults to the input shape (an ObfNet); RecNet uses it to map a
    transformed tensor of any shape back to the image shape.
    """

    def __init__(
        self, input_shape: Shape, bottleneck: int, output_shape: Shape | None = None, noise: float = 0.0
    ):
        super().__init__()
        if bottleneck <= 0:
            raise ValueError(f"bottleneck must be positive, got {bottleneck}")
        self.noise = _check_noise(noise)
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape or input_shape)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(_numel(self.input_shape), bottleneck),
            nn.ReLU(),
            nn.Linear(bottleneck, _numel(self.output_shape)),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._send(self.net(x).view(-1, *self.output_shape))


class ObfNetCNN(Obfuscator):
    """Conv(32) -> MaxPool(2) -> Flatten -> Dense(N) -> Dense(C*H*W, ReLU) -> reshape."""

    def __init__(self, input_shape: Shape, bottleneck: int, noise: float = 0.0) -> None:
        super().__init__()
        if bottleneck <= 0:
            raise ValueError(f"bottleneck must be positive, got {bottleneck}")
        self.noise = _check_noise(noise)
        c, h, w = input_shape
        self.input_shape = self.output_shape = tuple(input_shape)
        flat = 32 * ((h - 2) // 2) * ((w - 2) // 2)
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            Flatten(),
            nn.Linear(flat, bottleneck),
            nn.ReLU(),
            nn.Linear(bottleneck, _numel(input_shape)),
            nn.ReLU(),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._send(self.net(channels_last(x)).view(-1, *self.output_shape))


RECNET_BOTTLENECK = 1024


def reference_init(model: nn.Module) -> nn.Module:
    """Initialise like the reference Keras code: Glorot-uniform weights, zero biases.

    PyTorch's default also draws each bias at random, which leaves units of a small ReLU
    bottleneck dead (never positive) from the first step: ObfNet-CNN(8) on Colored-MNIST kept
    2-6 of its 8 units and ended at 72-89% utility over three seeds; with this initialisation
    it keeps all 8 and reaches 89-91% (InfNets and ObfNets; the attack networks keep PyTorch's).
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


@register_model("infnet_cnn", role=Role.INFNET, arch="cnn")
def infnet_cnn(*, input_shape: Shape = (1, 28, 28), classes: int = 10) -> InfNetCNN:
    return reference_init(InfNetCNN(tuple(input_shape), classes))


@register_model("infnet_mlp", role=Role.INFNET, arch="mlp")
def infnet_mlp(*, input_shape: Shape = (1, 28, 28), classes: int = 10) -> InfNetMLP:
    return reference_init(InfNetMLP(tuple(input_shape), classes))


@register_model("obfnet_mlp", role=Role.OBFUSCATOR, arch="mlp")
def obfnet_mlp(*, input_shape: Shape = (1, 28, 28), bottleneck: int = 512, noise: float = 0.0) -> ObfNetMLP:
    return reference_init(ObfNetMLP(tuple(input_shape), bottleneck, noise=noise))


@register_model("obfnet_cnn", role=Role.OBFUSCATOR, arch="cnn")
def obfnet_cnn(*, input_shape: Shape = (1, 28, 28), bottleneck: int = 512, noise: float = 0.0) -> ObfNetCNN:
    return reference_init(ObfNetCNN(tuple(input_shape), bottleneck, noise=noise))


@register_model("recnet", role=Role.ATTACK)
def recnet(*, input_shape: Shape = (1, 28, 28), output_shape: Shape | None = None) -> ObfNetMLP:
    """The reconstruction attack's network: ObfNet-MLP with N fixed at 1024."""
    out = tuple(output_shape) if output_shape else None
    return ObfNetMLP(tuple(input_shape), RECNET_BOTTLENECK, out)


@register_model("colornet", role=Role.ATTACK)
def colornet(*, input_shape: Shape = (3, 28, 28), classes: int = 7) -> InfNetMLP:
    """The attribute attack's network: InfNet-MLP with k attribute outputs."""
    return InfNetMLP(tuple(input_shape), classes)
