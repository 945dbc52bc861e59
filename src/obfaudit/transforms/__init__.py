"""Transforms under audit: where they come from, the controls, and applying them.

A transform is any callable from a batch of images ``(n, C, H, W)`` in [0, 1] to a batch
of ``n`` tensors. It can be an obfaudit model (safetensors + sidecar), a ``MODULE:CALLABLE``
of the user's, or one of the controls: identity (sends the image, leaks everything) and
null (sends zeros, keeps nothing).
"""

from obfaudit.transforms.base import (
    CONTROLS,
    CheckedTransform,
    IdentityTransform,
    NullTransform,
    Observer,
    Transform,
    TransformError,
    apply_transform,
    to_device,
)
from obfaudit.transforms.sources import LoadedTransform, load_transform, resolve_source

__all__ = [
    "CONTROLS",
    "CheckedTransform",
    "TransformError",
    "IdentityTransform",
    "LoadedTransform",
    "NullTransform",
    "Observer",
    "Transform",
    "apply_transform",
    "load_transform",
    "resolve_source",
    "to_device",
]
