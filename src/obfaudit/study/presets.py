"""Named settings for ``obfaudit reproduce``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from obfaudit.errors import ObfauditError
from obfaudit.threat import STUDY_ATTACKS

STUDY_BOTTLENECKS = (8, 16, 32, 64, 128, 256, 512, 1024)
#: The stronger attacks every preset adds to the study's (issue 13): the server's probes, the
#: eavesdropper's decoder and the inversion started from it.
NEW_ATTACKS = ("linprobe", "knnprobe", "decoder", "inversion-decoder")
#: (defence, strength) pairs of the defences preset: the undefended ObfNet and each defence at
#: one or two strengths. The first three were chosen on ObfNet-MLP(64) (8 epochs; utility /
#: ColorNet F_a, undefended 90.2 / 98.3%): noise sigma 0.5 87.5/66.9, 1 83.1/43.9, 2 70.8/27.6;
#: dcor lambda 1 92.1/88.1, 4 89.9/75.1, 16 and 64 collapse (10% utility); adversarial lambda 1
#: and 4 ~89/95, 16 78.7/82.3, 64 49.5/27.7. In the run that chose the rest (ObfNet-MLP(64) and
#: ObfNet-CNN(64); utility, then the worst case over every attack): adversarial 64 MLP 51.9% /
#: 68.6%, CNN 93.3% / 48.4%; adversarial-ensemble 16 MLP 90.5% / 90.0%, CNN 93.8% / 51.7%, so only
#: its stronger point stays; invariance 100 MLP 92.3% / 77.6%, CNN 94.8% / 41.9%, and 1000 (the
#: weight ramped up over the first epoch: without the ramp ObfNet-MLP collapsed) MLP 91.6% /
#: 32.3%, CNN 94.3% / 21.1%.
DEFENCE_SWEEP = (
    ("none", 0.0),
    ("noise", 2.0),
    ("dcor", 8.0),
    ("adversarial-ensemble", 64.0),
    ("invariance", 100.0),
    ("invariance", 1000.0),
)


@dataclass(frozen=True)
class Preset:
    """Everything that decides what a reproduction computes."""

    name: str
    description: str
    full_mnist: bool = False
    """Use full MNIST from --data-root instead of the embedded 5k subset."""
    datasets: tuple[str, ...] = ("mnist", "colored-mnist")
    """The datasets whose InfNets and ObfNets the sweep trains (the study's two; shapes is generated)."""
    size: int | None = None
    """Pixels per side of a generated dataset (shapes; None: its default, 64)."""
    bottlenecks: tuple[int, ...] = STUDY_BOTTLENECKS
    """Colored-MNIST ObfNet bottlenecks (figures 8-11)."""
    mnist_bottlenecks: tuple[int, ...] = STUDY_BOTTLENECKS[:-1]
    """MNIST ObfNet-MLP bottlenecks (figure 7)."""
    archs: tuple[str, ...] = ("mlp", "cnn")
    attacks: tuple[str, ...] = STUDY_ATTACKS + NEW_ATTACKS
    """Registered attacks run on each ObfNet (embedding attacks only on the ``tsne`` ObfNets,
    slow ones only on the ``slow_on`` ObfNets)."""
    slow_on: tuple[tuple[str, int], ...] | None = None
    """(arch, N) of the ObfNets that slow attacks (decoder, inversions, proxy probes) run on;
    None: every ObfNet and the controls."""
    infnet_epochs: int = 14
    obfnet_epochs: int = 14
    attack_epochs: int = 15
    proxy_epochs: int = 4
    model_schedule: str = "constant"
    """Learning rate of InfNets and ObfNets over their epochs (obfaudit.train.SCHEDULES):
    constant at ``model_lr`` (the study's), or onecycle (up to ``model_lr``, then down)."""
    model_lr: float = 1e-3
    model_patience: int | None = None
    """Early stopping of InfNets and ObfNets; None trains every epoch on all the training data.
    On the 4,000-image data, holding out 10% to stop early cost 2-5 points of accuracy."""
    attack_patience: int | None = 3
    """Early stopping of the attack networks on a 10% validation split of their own data."""
    attack_nets: str = "mlp"
    """The attack networks (obfaudit.train_config.ATTACK_NETS): the study's MLPs, or auto (convolutional
    for spatial tensors above 3x32x32 values), as ``obfaudit audit --attack-nets``."""
    min_steps: int | None = None
    """Each attack network trains at least this many steps (None: the epochs as given)."""
    proxy_n: int = 30_000
    n_train: int | None = None
    n_test: int | None = None
    tsne: tuple[tuple[str, int], ...] = (("mlp", 1024), ("cnn", 8))
    """(arch, N) of the ObfNets that embedding attacks (t-SNE) run on, the study's fig11."""
    tsne_points: int = 1000
    random_controls: bool = True
    """Audit each ObfNet architecture with random weights beside the identity and null controls."""
    defences: tuple[tuple[str, float], ...] = ()
    """(defence, strength) pairs: each Colored-MNIST ObfNet of the sweep is trained once per pair
    (see obfaudit.defences); empty: the study's undefended ObfNets."""
    precision: str = "bf16"
    infnet_dropout: bool = False
    """Keep InfNet dropout on while training ObfNets (the reference Keras behaviour)."""
    scaling: bool = False
    """Run the 224x224x3 scaling study on an image folder (needs --data-root)."""
    scaling_epochs: int = 3
    scaling_n_train: int | None = None
    scaling_n_test: int | None = None
    scaling_size: int = 224
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        description="the whole sweep on the embedded 5,000-image MNIST subset, fast on a CPU",
        # InfNets and ObfNets: a one-cycle schedule up to 3e-3 reaches in 6 and 5 epochs what a
        # constant 1e-3 reached in 14 and 8 (three seeds each, reference initialisation): InfNet-CNN
        # 96.4 / 96.7% clean accuracy (Colored-MNIST / MNIST) vs 96.4 / 97.1%; ObfNet-CNN(8)
        # 89-90% vs 90-91%, ObfNet-MLP(8) 85-87% vs 87-88%, ObfNet-CNN(512) 94-95% vs 92-93%.
        # The attack networks keep the study's constant rate: a one-cycle RecNet or ColorNet in
        # fewer epochs was weaker on ObfNet-CNN(1024) (ColorNet 54% vs 96%).
        infnet_epochs=6,
        obfnet_epochs=5,
        model_schedule="onecycle",
        model_lr=3e-3,
        attack_epochs=15,
        proxy_epochs=2,
        # The new attacks' cost, measured in one run of this preset (benchmarks/reproduce.py,
        # per-attack seconds in results.json): linprobe 67 s, knnprobe 27 s over 20 audits; decoder
        # 32 s and inversion-decoder 64 s on two ObfNets. Within the 25% budget: the slow ones on
        # two ObfNets, one per architecture, where the study's adversary trails its server most,
        # and no k-NN probe (the linear probe scored at least as high on all 16 ObfNets).
        attacks=STUDY_ATTACKS + ("linprobe", "decoder", "inversion-decoder"),
        slow_on=(("mlp", 64), ("cnn", 1024)),
    ),
    "paper": Preset(
        name="paper",
        description="the study's settings: full MNIST from --data-root, 14 epochs, no early stopping",
        full_mnist=True,
        infnet_epochs=14,
        obfnet_epochs=14,
        attack_epochs=14,
        proxy_epochs=14,
        attack_patience=None,
        precision="fp32",
        tsne_points=10_000,
    ),
    "smoke": Preset(
        name="smoke",
        description="a tiny run for tests: two bottlenecks, few images, two epochs",
        bottlenecks=(8, 64),
        mnist_bottlenecks=(8,),
        infnet_epochs=2,
        obfnet_epochs=2,
        attack_epochs=2,
        proxy_epochs=1,
        attack_patience=None,
        proxy_n=1400,
        n_train=600,
        n_test=210,
        tsne=(("mlp", 64),),
        tsne_points=150,
        slow_on=(("mlp", 64),),
    ),
    "defences": Preset(
        name="defences",
        description="defended ObfNet-MLP(64) and ObfNet-CNN(64) (none, noise, distance correlation, "
        "adversarial training, an adversarial ensemble and invariance), every attack retrained on each; "
        "the frontier",
        bottlenecks=(64,),
        mnist_bottlenecks=(),
        archs=("mlp", "cnn"),
        attacks=STUDY_ATTACKS[:-1] + NEW_ATTACKS,
        tsne=(),
        obfnet_epochs=8,
        attack_epochs=15,
        proxy_epochs=2,
        proxy_n=10_000,
        defences=DEFENCE_SWEEP,
        # the identity (which calibrates every attack) and the null suffice to judge a defence; a random
        # ObfNet-CNN's eight attacks, inversion through it included, cost minutes of the 20
        random_controls=False,
    ),
    "shapes": Preset(
        name="shapes",
        description="the study's sweep at another size: InfNet, ObfNet-MLP and ObfNet-CNN (N = 256) on "
        "generated 48x48 shapes, the server's attacks on their hue with convolutional attack networks",
        datasets=("shapes",),
        size=48,
        bottlenecks=(256,),
        attacks=("recnet", "colornet", "linprobe", "knnprobe"),
        tsne=(),
        # The models under study on the default preset's one-cycle schedule, but longer: with the default's
        # 6 and 5 epochs (and with constant rates up to 30 epochs) neither ObfNet learnt shapes at 32x32 or
        # 64x64 (utility 23-31%, chance 25%); with an InfNet of 15 epochs (97.2% at 32x32) ObfNet-CNN(256)
        # reached 93.6% in 15, ObfNet-MLP(256) 29.6%. The attack networks sized for the tensors (issue 25:
        # convolutional above 3x32x32 values, at least 1,000 steps each).
        infnet_epochs=15,
        obfnet_epochs=15,
        model_schedule="onecycle",
        model_lr=3e-3,
        attack_nets="auto",
        min_steps=1000,
        random_controls=False,
    ),
    "imagenette": Preset(
        name="imagenette",
        description="the scaling study: ResNet50 with LightNet and DenseNet on an image folder "
        "(--data-root), plus the cost table",
        bottlenecks=(),
        mnist_bottlenecks=(),
        archs=(),
        tsne=(),
        scaling=True,
    ),
}


def get_preset(name: str, **overrides) -> Preset:
    """A preset by name, with optional overrides of its fields."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ObfauditError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None
    return replace(preset, **overrides) if overrides else preset


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
    executor: str = "processes"
    """How stages run: processes (side by side in worker processes, one per CPU up to 4, each on its share
    of the cores; $OBFAUDIT_WORKERS sets how many), serial (one after another in this process, on every
    core) or ray (as Ray tasks, several at once; pip install 'obfaudit[ray]')."""
    address: str | None = None
    """With --executor ray: the cluster to join, auto or HOST:PORT (default: start Ray on this machine's
    cores). The run directory must then be on storage every node sees at the same path."""

    def run_dir(self) -> Path:
        return Path(self.out) if self.out is not None else Path("runs") / self.preset
