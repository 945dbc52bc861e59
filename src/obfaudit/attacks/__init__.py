"""Attacks and privacy metrics; every attack takes a transform, not only an ObfNet."""

from obfaudit.attacks.attribute import AttributeInference, colornet, proxy_net
from obfaudit.attacks.audit import (
    ATTACKS,
    AuditConfig,
    AuditResult,
    audit,
    audit_transform,
    records_table,
)
from obfaudit.attacks.base import (
    CONTROLS,
    AdversaryKnowledge,
    Attack,
    IdentityTransform,
    NullTransform,
    Observer,
    Party,
    ServerKnowledge,
    Transform,
    apply_transform,
)
from obfaudit.attacks.embedding import (
    EmbeddingAnalysis,
    ThirdPartyKnowledge,
    leakage_scores,
    tsne_2d,
)
from obfaudit.attacks.metrics import (
    attribute_summary,
    chance_level,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    read_colour,
    verdict,
)
from obfaudit.attacks.reconstruct import Reconstruction

__all__ = [
    "ATTACKS",
    "CONTROLS",
    "AdversaryKnowledge",
    "Attack",
    "AttributeInference",
    "AuditConfig",
    "AuditResult",
    "EmbeddingAnalysis",
    "IdentityTransform",
    "NullTransform",
    "Observer",
    "Party",
    "Reconstruction",
    "ServerKnowledge",
    "ThirdPartyKnowledge",
    "Transform",
    "apply_transform",
    "attribute_summary",
    "audit",
    "audit_transform",
    "chance_level",
    "colornet",
    "compromise_threshold",
    "feature_accuracy",
    "image_quality",
    "leakage_scores",
    "proxy_net",
    "read_colour",
    "records_table",
    "tsne_2d",
    "verdict",
]
