"""An audit's job: what to audit, on what, with what budget. Importable without torch (the command
line builds its parser and answers ``--help`` from the field docstrings here)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from obfaudit.errors import ObfauditError

#: ``--budget`` (kept here so that building the parser imports no torch; checked against
#: :data:`obfaudit.attacks.prepare.BUDGETS` by the tests).
BUDGET_NAMES = ("standard", "quick")
#: The settings a budget gives unless the job gives them itself.
BUDGET_FIELDS = ("epochs", "min_steps", "n_proxy", "n_tsne")


def default_cache() -> Path:
    """Where audits keep what other audits can reuse: $OBFAUDIT_CACHE, else $XDG_CACHE_HOME/obfaudit,
    else ~/.cache/obfaudit."""
    import os

    if os.environ.get("OBFAUDIT_CACHE"):
        return Path(os.environ["OBFAUDIT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "obfaudit"
    try:
        return Path.home() / ".cache" / "obfaudit"
    except RuntimeError:  # no home directory (some containers)
        raise ObfauditError(
            "no home directory for the audits' cache: give --cache DIR or $OBFAUDIT_CACHE"
        ) from None


@dataclass(frozen=True, kw_only=True)
class AuditJob:
    """Settings of ``obfaudit audit``."""

    transform: str | Callable
    """The transform under audit: identity or null (controls), a .onnx file, a saved obfaudit model, or
    MODULE:CALLABLE (from Python: the callable itself)."""
    name: str | None = None
    """The subject's name in the results (default: the model's file name, or the callable's name)."""
    data: str | None = None
    """colored-mnist (default, or the saved model's own dataset), or a folder DIR with DIR/train/<class>/* and
    DIR/test/<class>/* images and DIR/attributes.csv."""
    attributes: Path | None = None
    """The attributes CSV of a data folder (default: DIR/attributes.csv): a path column relative to
    DIR, one column per attribute."""
    attribute: str | None = None
    """The sensitive attribute (default: colour on Colored-MNIST, else the CSV's first attribute column)."""
    size: int | None = None
    """Resize a folder's images to SIZE x SIZE (default: the first training image's size)."""
    proxy: tuple[str, ...] | None = None
    """The adversary's own data: noisy and/or path (built in, for colour), or a folder DIR with an
    attributes CSV (default: noisy path for colour, none otherwise)."""
    attacks: tuple[str, ...] | None = None
    """Registered attacks to run (default: every one whose needs the data meets)."""
    repeats: int = 1
    """Train each attack K times with seeds SEED..SEED+K-1 and report the spread."""
    infnet: Path | None = None
    """A clean InfNet of the task, the judge that reads the task from reconstructions."""
    budget: str = "standard"
    """standard (every applicable attack, fully trained) or quick: a screen of about a minute on a small
    folder (probes, attribute classifiers and decoders at low resolution, briefly trained) that can find a
    leak, never rule one out: it says compromised or inconclusive, never not compromised."""
    epochs: int | None = None
    """Epochs of the attack networks trained on the training split (proxy-trained: a third, at least 1);
    more on small data (--min-steps), with early stopping on a 10% hold-out (default: 15; quick: 5)."""
    min_steps: int | None = None
    """Each attack network trains for at least this many optimiser steps, however few the images (its epoch
    cap rises, up to 400 epochs; early stopping still ends it); 0: the epochs as given (default: 1000;
    quick: 250)."""
    split: tuple[str, ...] | None = None
    """Cut the model of --transform (MODULE:CALLABLE returning an nn.Module, or an .onnx file) at each
    node (a module or torch.fx node name such as layer1, or an ONNX tensor name) and audit each cut:
    leakage against depth, the bytes each cut sends, the task still readable there."""
    attack_nets: str = "auto"
    """The attack networks: auto (convolutional for spatial tensors above 3x32x32 values, the study's MLPs
    below), conv (convolutional for every spatial tensor) or mlp (the study's MLPs everywhere)."""
    n_train: int | None = None
    """Use only the first N training images."""
    n_test: int | None = None
    """Use only the first N test images."""
    n_proxy: int | None = None
    """Images the adversary generates per built-in proxy (noisy, path) (default: 30,000; quick: 5,000)."""
    n_tsne: int | None = None
    """Test images the t-SNE embeds (default: 1000; quick: 500)."""
    tsne_backend: str = "opentsne"
    """t-SNE implementation: opentsne (the faster here) or sklearn."""
    no_controls: bool = False
    """Skip the controls (identity, null and, for a saved model, random weights)."""
    traffic: Path | None = None
    """A capture from 'obfaudit tap' (or 'serve --log'): attack the tensors it holds instead of transforming
    the test images; the data and labels come from --edge-record."""
    edge_record: Path | None = None
    """The edge's run record (edge.json) of the captured traffic: which images were sent, and their labels."""
    executor: str = "processes"
    """processes (stages side by side in worker processes, one per CPU up to 4, each on its share of the
    cores; $OBFAUDIT_WORKERS sets how many), serial (one stage after another in this process, on every
    core) or ray (stages as Ray tasks, several at once; pip install 'obfaudit[ray]')."""
    address: str | None = None
    """With --executor ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine's
    cores)."""
    seed: int = 0
    """Seeds the split, the proxies, every attack network and the bootstrap."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto: where the transform, the attacks and the judges run."""
    data_root: Path | None = None
    """For MNIST data: a directory with full MNIST (MNIST/raw/*-ubyte) instead of the embedded subset."""
    download: bool = False
    """Download full MNIST into --data-root when it is missing (needs a network)."""
    out: Path = Path("audit")
    """Directory for the results (JSON, CSV), the figures and report.html; rerunning into it resumes."""
    known_pairs: tuple[str, ...] | None = None
    """How much the attacker must know: K[,K...] numbers of private (image, sent tensor) pairs, drawn from the
    training split, that an adversary holds; each K is audited with the known-pairs attacks into
    OUT/known-pairs-K, and the report draws the worst case against K (0: the proxy-only eavesdropper)."""
    pairs_held: int = 0
    """(Set by the --known-pairs sweep) the pairs the adversary of this audit holds."""
    fail_on: str | None = None
    """A gate for CI: after writing everything, exit with status 3 when any party's verdict is at or
    beyond this level: compromised (a leak its interval proves) or inconclusive (a leak not ruled out)."""
    junit: Path | None = None
    """Also write a JUnit XML file here, one test case per party, failed when its verdict reaches
    --fail-on (compromised without it), for CI systems to display."""
    cache: Path | None = None
    """Where the controls and the judge are kept for other audits of the same data and settings
    (default: $OBFAUDIT_CACHE, else $XDG_CACHE_HOME/obfaudit or ~/.cache/obfaudit)."""
    progress: bool = False
    """Show progress bars (the CLI sets it on a terminal)."""
    left_out: dict[str, str] | None = None
    """Attacks left out of the default set, with why (a split sweep leaves out the gradient attacks);
    named with --attack, they run."""

    def __post_init__(self) -> None:
        from obfaudit.attacks.prepare import BUDGETS

        if self.budget not in BUDGETS:
            raise ObfauditError(f"--budget {self.budget}: use one of {', '.join(BUDGETS)}")

    @property
    def spent(self):
        """The :class:`~obfaudit.attacks.prepare.AuditBudget` of :attr:`budget`, with what the job sets
        itself (epochs, min_steps, n_proxy, n_tsne) in place of the budget's (the fields stay None
        when not given, so that ``replace(job, budget=...)`` takes the other budget's)."""
        from obfaudit.attacks.prepare import BUDGETS

        given = {name: getattr(self, name) for name in BUDGET_FIELDS if getattr(self, name) is not None}
        return replace(BUDGETS[self.budget], **given)

    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache is not None else default_cache()

    def settings(self) -> dict:
        """The job as plain values (a callable by its name; what the budget sets, as it sets it), for
        results.json."""
        out: dict[str, Any] = {}
        spent = self.spent
        for f in fields(self):
            v = getattr(spent, f.name) if f.name in BUDGET_FIELDS else getattr(self, f.name)
            if callable(v) and not isinstance(v, str | Path):
                v = f"{getattr(v, '__module__', '?')}:{getattr(v, '__qualname__', type(v).__name__)}"
            out[f.name] = str(v) if isinstance(v, Path) else v
        return out


__all__ = ["BUDGET_FIELDS", "BUDGET_NAMES", "AuditJob", "default_cache"]
