"""Attacks and privacy metrics: a registry of attacks, each run under its party's knowledge.

Add an attack by writing one module with an :class:`Attack` subclass decorated with
``@register_attack("name")``; the auditor, results, report and CLI pick it up.
"""

# the built-in attacks, each registering itself
from obfaudit.attacks import attribute, decoder, embedding, inversion, known_pairs, probes  # noqa: F401, I001
from obfaudit.attacks import reconstruct, reference  # noqa: F401, I001
from obfaudit.attacks.auditor import STUDY_ATTACKS, AuditConfig, AuditResult, SubjectAudit, audit_transform
from obfaudit.attacks.base import NEEDS, Attack, AttackSettings, Output, Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, ServerKnowledge, ThirdPartyKnowledge
from obfaudit.attacks.metrics import (
    attribute_summary,
    chance_level,
    compromise_threshold,
    feature_accuracy,
    image_quality,
    read_colour,
    verdict,
)
from obfaudit.attacks.registry import (
    attack_class,
    attack_names,
    attacks_table,
    load_plugins,
    register_attack,
    unregister_attack,
)
from obfaudit.attacks.scoring import Score, Scorer

__all__ = [
    "NEEDS",
    "STUDY_ATTACKS",
    "AdversaryKnowledge",
    "Attack",
    "AttackSettings",
    "AuditConfig",
    "AuditResult",
    "Output",
    "Party",
    "Score",
    "Scorer",
    "SubjectAudit",
    "ServerKnowledge",
    "ThirdPartyKnowledge",
    "attack_class",
    "attack_names",
    "attacks_table",
    "attribute_summary",
    "audit_transform",
    "chance_level",
    "compromise_threshold",
    "feature_accuracy",
    "image_quality",
    "load_plugins",
    "read_colour",
    "register_attack",
    "unregister_attack",
    "verdict",
]
