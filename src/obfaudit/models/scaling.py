"""The scaling study's networks at 224x224x3: ResNet50 (InfNet), LightNet and DenseNet.

The study names the layers but not every width. obfaudit's choices, made so the counts
match its Table 1 (at 224x224x3):

- LightNet: MaxPool(2) -> Dropout(0.25) -> Conv(64, 3x3, same) -> Conv(32, 3x3, same) ->
  BatchNorm -> GaussianNoise(0.1, training only) -> ConvTranspose(3, 2x2, stride 2), linear
  output (its input and output live in ResNet's normalised space, which has negative
  values). 20,707 parameters (20,771 counting BatchNorm's running statistics, as Keras
  does) vs the study's 20.7K; 5.15e8 FLOPs vs 5.10e8.
- DenseNet (the study's name; not Huang et al.'s DenseNet): [Conv(32, 3x3, valid) ->
  MaxPool(2)] -> [Conv(16, 3x3, valid) -> MaxPool(2)] -> Dropout(0.25) -> Flatten ->
  Dense(128) -> Dense(224*224*3) -> reshape. 25.40M parameters vs 25.0M (+1.6%);
  2.45e8 FLOPs vs 2.29e8 (the study's FLOPs cannot be matched together with its
  parameter count by any natural choice of widths; see benchmarks/ and the issue notes).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from obfaudit.errors import ModelFileError
from obfaudit.models._registry import Role, register_model
from obfaudit.models.small import Obfuscator, Shape, channels_last

# torchvision's ImageNet weights for ResNet50 (V2 recipe); the file name carries the first
# hex digits of its SHA-256, which torchvision checks after downloading (check_hash=True).
RESNET50_IMAGENET_URL = "https://download.pytorch.org/models/resnet50-11ad3fa6.pth"


class GaussianNoise(nn.Module):
    """Adds N(0, std^2) noise while training; the identity at inference (as Keras')."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.std > 0:
            return x + self.std * torch.randn_like(x)
        return x


class LightNet(Obfuscator):
    """A fully convolutional obfuscator with no dense layer."""

    def __init__(
        self,
        input_shape: Shape = (3, 224, 224),
        *,
        width: int = 64,
        dropout: float = 0.25,
        noise: float = 0.1,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        if h % 2 or w % 2:
            raise ValueError(f"LightNet needs an even image size, got {h}x{w}")
        self.input_shape = self.output_shape = tuple(input_shape)
        self.net = nn.Sequential(
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Conv2d(c, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(width // 2),
            GaussianNoise(noise),
            nn.ConvTranspose2d(width // 2, c, 2, stride=2),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(channels_last(x))


class DenseObfNet(Obfuscator):
    """The study's 'DenseNet': two conv+pool blocks, a 128-wide dense bottleneck, a dense output."""

    def __init__(
        self,
        input_shape: Shape = (3, 224, 224),
        *,
        bottleneck: int = 128,
        widths: tuple[int, int] = (32, 16),
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        self.input_shape = self.output_shape = tuple(input_shape)
        h2, w2 = ((h - 2) // 2 - 2) // 2, ((w - 2) // 2 - 2) // 2
        self.net = nn.Sequential(
            nn.Conv2d(c, widths[0], 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(widths[1] * h2 * w2, bottleneck),
            nn.ReLU(),
            nn.Linear(bottleneck, math.prod(input_shape)),
        )
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(channels_last(x)).view(-1, *self.output_shape)


@register_model("lightnet", role=Role.OBFUSCATOR)
def lightnet(*, input_shape: Shape = (3, 224, 224)) -> LightNet:
    return LightNet(tuple(input_shape))


@register_model("densenet", role=Role.OBFUSCATOR)
def densenet(*, input_shape: Shape = (3, 224, 224)) -> DenseObfNet:
    return DenseObfNet(tuple(input_shape))


@register_model("resnet50", role=Role.INFNET)
def resnet50(*, input_shape: Shape = (3, 224, 224), classes: int = 10) -> nn.Module:
    """torchvision's ResNet50 with a ``classes``-way head; see :func:`load_imagenet_weights`."""
    from torchvision.models import resnet50 as tv_resnet50

    model = tv_resnet50(weights=None, num_classes=classes)
    model.input_shape = tuple(input_shape)
    return model


def load_imagenet_weights(
    model: nn.Module, path: str | Path | None = None, *, download: bool = False
) -> nn.Module:
    """Load ImageNet weights into a ResNet50 (all but the classification head).

    From a local ``.safetensors`` file, or a ``.pth`` file read with ``weights_only=True``
    (no arbitrary unpickling); or, with ``download``, torchvision's file with its SHA-256 check.
    """
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ModelFileError(f"{path}: ResNet50 weights file not found")
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
            raise ModelFileError(f"{path}: cannot read ResNet50 weights ({type(e).__name__}: {e})") from None
    elif download:
        from torch.hub import load_state_dict_from_url

        try:
            state = load_state_dict_from_url(
                RESNET50_IMAGENET_URL, map_location="cpu", check_hash=True, weights_only=True
            )
        except Exception as e:  # noqa: BLE001 - offline, refused or corrupt: one line
            raise ModelFileError(f"cannot download ResNet50 ImageNet weights ({e})") from None
    else:
        return model
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("fc.") for k in missing):
        raise ModelFileError(
            f"{path or 'download'}: not ResNet50 weights (missing {missing[:3]}, extra {unexpected[:3]})"
        )
    return model
