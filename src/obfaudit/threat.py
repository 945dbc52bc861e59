"""The threat model as types: who attacks, what an attack infers, what it needs, what it concludes.

Light to import (no torch): records, the report and the command line use these types
without loading any network code. Every member is a ``str`` too, so records written as
JSON read ``"server"`` or ``"compromised"``, and old records load back into the types.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Party(StrEnum):
    """Who runs an attack (SPEC section 1)."""

    SERVER = "server"
    """Honest-but-curious server: the transform and the original training data."""
    ADVERSARY = "adversary"
    """Eavesdropper: the transform, the traffic and self-made proxy data, never the training data."""
    THIRD_PARTY = "third-party"
    """Trusted-third-party case: the transform is private; only transformed data is seen."""


#: The study's attacks, run when none are named.
STUDY_ATTACKS = ("recnet", "colornet", "noisynet", "pathnet", "tsne")

#: The parties in the order reports list them.
PARTIES = (Party.SERVER, Party.ADVERSARY, Party.THIRD_PARTY)


class Output(StrEnum):
    """What an attack infers, which decides how it is scored."""

    IMAGE = "image"
    """Reconstructed images, scored by MSE/PSNR/SSIM and what a judge reads from them."""
    ATTRIBUTE = "attribute"
    """One predicted attribute class per image, scored by feature accuracy F_a."""
    EMBEDDING = "embedding"
    """A low-dimensional embedding, scored by how well neighbours share the attribute."""


class Verdict(StrEnum):
    """What a score's 95% interval says against the line."""

    COMPROMISED = "compromised"
    """The interval lies above the line: the attribute leaks."""
    INCONCLUSIVE = "inconclusive"
    """The interval straddles the line."""
    NOT_COMPROMISED = "not compromised"
    """The interval lies below the line."""

    @property
    def severity(self) -> int:
        """The verdicts in order: not compromised 0, inconclusive 1, compromised 2."""
        return _SEVERITY[self]

    @staticmethod
    def reaches(verdict: Verdict | str | None, level: Verdict | str) -> bool:
        """Whether ``verdict`` is at or beyond ``level`` (no verdict counts as inconclusive: a leak not
        ruled out)."""
        return Verdict(verdict or Verdict.INCONCLUSIVE).severity >= Verdict(level).severity


_SEVERITY = {Verdict.NOT_COMPROMISED: 0, Verdict.INCONCLUSIVE: 1, Verdict.COMPROMISED: 2}


def overall_verdict(verdicts: list[Verdict | str | None]) -> Verdict | None:
    """compromised if any attack says so; else inconclusive if any is; not compromised if every
    scored attack says so; None (no verdict) when no attack gave one."""
    given = [Verdict(v) for v in verdicts if v]
    return max(given, key=lambda v: v.severity) if given else None


class NeedKind(StrEnum):
    """What an attack may need from an audit."""

    TRAIN = "train"
    """The original training split (the server's knowledge)."""
    ATTRIBUTE = "attribute"
    """Labels of the sensitive attribute (to train on, and to be scored)."""
    TRAFFIC = "traffic"
    """The transformed test images."""
    TRANSFORM = "transform"
    """The transform itself, to apply to data of its own."""
    GRADIENTS = "gradients"
    """A transform that gradients flow through (torch code, not an ONNX graph)."""
    PROXY = "proxy"
    """Proxy data of the adversary's own: any (``proxy``) or one by name (``proxy:NAME``)."""
    KNOWN_PAIRS = "known_pairs"
    """(image, sent tensor) pairs of private data the adversary got hold of (``--known-pairs``)."""


@dataclass(frozen=True)
class Need:
    """One thing an attack needs; ``Need.parse("proxy:noisy")`` reads the written form."""

    kind: NeedKind
    proxy: str | None = None
    """With kind PROXY: the proxy dataset asked for by name (None: any)."""

    @classmethod
    def parse(cls, value: Need | str) -> Need:
        if isinstance(value, Need):
            return value
        kind, sep, name = str(value).partition(":")
        try:
            need_kind = NeedKind(kind)
        except ValueError:
            raise ValueError(
                f"unknown need {value!r}; needs are among {', '.join(NeedKind)} and proxy:NAME"
            ) from None
        if sep and (need_kind is not NeedKind.PROXY or not name):
            raise ValueError(f"unknown need {value!r}: only proxy takes a name (proxy:NAME)")
        return cls(need_kind, name or None)

    @classmethod
    def proxy_named(cls, name: str) -> Need:
        return cls(NeedKind.PROXY, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.proxy}" if self.proxy else str(self.kind)


TRAIN = Need(NeedKind.TRAIN)
ATTRIBUTE = Need(NeedKind.ATTRIBUTE)
TRAFFIC = Need(NeedKind.TRAFFIC)
TRANSFORM = Need(NeedKind.TRANSFORM)
GRADIENTS = Need(NeedKind.GRADIENTS)
ANY_PROXY = Need(NeedKind.PROXY)
KNOWN_PAIRS = Need(NeedKind.KNOWN_PAIRS)


#: What an unmet need means, for the reason an attack did not run.
NEED_REASONS = {
    NeedKind.TRAIN: "the original training split, which this audit does not have",
    NeedKind.ATTRIBUTE: "labels of the sensitive attribute on these images",
    NeedKind.TRAFFIC: "the transformed test images",
    NeedKind.TRANSFORM: "the transform itself",
    NeedKind.GRADIENTS: "gradients through the transform, which it does not pass: an ONNX graph, numpy, "
    "or torch code that detaches or runs under no_grad",
    NeedKind.PROXY: "proxy data of its own with this attribute, given as --proxy DIR (noisy and path are "
    "generated for colour at 28x28 only)",
    NeedKind.KNOWN_PAIRS: "(image, sent tensor) pairs of the private data in the adversary's hands: give "
    "--known-pairs K (drawn from the training split, with their attribute)",
}


def why_unmet(missing: list[Need]) -> str:
    """One reason for a list of unmet needs, e.g. ``needs gradients: gradients through ...``."""
    return "; ".join(f"needs {n}: {NEED_REASONS[n.kind]}" for n in missing)


def unmet(needs: tuple[Need, ...], available: set[Need]) -> list[Need]:
    """The needs that ``available`` does not cover (empty: the attack can run)."""
    return [n for n in needs if n not in available]
