"""The known-pairs adversary: the eavesdropper that also got hold of K private (image, sent tensor) pairs.

How much must an attacker know before the transform leaks? The study's eavesdropper knows the
public transform and images it generated itself (k = 0); the server knows every training pair.
Between them, an adversary that stole K pairs of the private distribution (a leaked log, a
compromised device, a few users who published their photos), drawn from the training split and
never the test split, with the attribute those images show. With them it trains the same
networks as the server's ColorNet and RecNet, on K pairs instead of all of them:

- ``knownpairs``: an attribute classifier on the K sent tensors;
- ``knownpairs-decoder``: a decoder from the K sent tensors back to the images; the judge reads
  the attribute from what it rebuilds.

``obfaudit audit --known-pairs 0,10,100,1000`` sweeps K and draws the worst case against it.
"""

from __future__ import annotations

from obfaudit.attacks.attribute import AttributeClassifier
from obfaudit.attacks.base import Party
from obfaudit.attacks.knowledge import AdversaryKnowledge, expect
from obfaudit.attacks.reconstruct import Reconstructor
from obfaudit.attacks.registry import register_attack


@register_attack("knownpairs")
class KnownPairsClassifier(AttributeClassifier):
    party = Party.ADVERSARY
    needs = ("known_pairs", "attribute")
    description = (
        "adversary with K stolen (image, sent tensor) pairs: an attribute classifier trained on them"
    )

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        z, pairs = knowledge.known_pairs()
        return self._train(z, pairs, self.config.train)


@register_attack("knownpairs-decoder")
class KnownPairsDecoder(Reconstructor):
    party = Party.ADVERSARY
    needs = ("known_pairs",)
    description = "adversary with K stolen (image, sent tensor) pairs: a decoder (RecNet) trained on them"

    def fit(self, knowledge: AdversaryKnowledge) -> dict:
        expect(knowledge, self.party, self.name)
        z, pairs = knowledge.known_pairs()
        return self._train(z, pairs.x, self.config.train, f"{pairs.name} ({len(pairs)} known pairs)")
