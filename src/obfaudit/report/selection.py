"""Which figures a run's results allow, drawn, each with a one-sentence reading."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from obfaudit.records import Experiment, Kind
from obfaudit.report import figures as F
from obfaudit.report.collect import attack_series, attacks_by_subject, attacks_present, compare, strongest_by
from obfaudit.report.defences import defence_rows, frontier_figure, target_reading
from obfaudit.report.findings import STUDY_NUMBERS, pct
from obfaudit.threat import Output

#: The study's figure numbers for its attacks; any other attack gets a figure of its own name.
STUDY_FIGURE_IDS = {"colornet": "fig9", "noisynet": "fig10a", "pathnet": "fig10b"}
RECONSTRUCTION_FIGURES = (
    ("fig7", "mnist", "mlp"),
    ("fig8", "colored-mnist", "mlp"),
    ("fig8b", "colored-mnist", "cnn"),
)
DATASET = "colored-mnist"


def _load(run_dir: Path, path: str | None) -> dict:
    try:
        return load_file(str(run_dir / path)) if path else {}
    except Exception:  # noqa: BLE001 - a missing artifact only leaves its figure out
        return {}


def _reconstructions(run_dir: Path, exps: list[Experiment], figs: dict, fdir: Path, dataset: str) -> None:
    image_attacks = attacks_present(exps, output="image")
    wanted = RECONSTRUCTION_FIGURES
    if dataset != DATASET:  # another study dataset (shapes): its two figures 8
        wanted = (("fig8", dataset, "mlp"), ("fig8b", dataset, "cnn"))
    for fig_id, ds, arch in wanted:
        on = sorted(
            (
                e
                for e in exps
                if e.kind is Kind.ATTACK and e.dataset == ds and e.arch == arch and e.attack in image_attacks
            ),
            key=lambda e: (e.bottleneck, image_attacks.index(e.attack)),
        )
        rows, labels, done = [], [], set()
        for e in on:
            a = _load(run_dir, e.artifacts)
            if not rows and "originals" in a:
                rows.append(a["originals"])
                labels.append("original")
            if e.bottleneck not in done and "transformed" in a:
                rows.append(a["transformed"])
                labels.append(f"N={e.bottleneck} obfuscated")
                done.add(e.bottleneck)
            if f"{e.attack}/output" in a:
                rows.append(a[f"{e.attack}/output"])
                labels.append(f"N={e.bottleneck} {e.attack}")
        if len(rows) < 3:
            continue
        name = f"{fig_id}_{ds}_{arch}_reconstructions.png"
        F.image_rows(
            rows,
            fdir / name,
            row_labels=labels,
            title=f"{fig_id}: {ds} originals, ObfNet-{arch.upper()} outputs and reconstructions",
        )
        reading = []
        for attack in image_attacks:
            ssim = attack_series(exps, ds, attack, "ssim").get(arch)
            if ssim:
                ns, v = ssim
                trend = "larger bottlenecks leak more of the image" if v[-1] > v[0] else "no gain with N here"
                reading.append(
                    f"{attack}'s SSIM to the originals goes from {v[0]:.2f} at N={ns[0]} to {v[-1]:.2f} at "
                    f"N={ns[-1]}: {trend}."
                )
            col = attack_series(exps, ds, attack, "attribute_recovered").get(arch)
            if col:
                reading.append(
                    f"The attribute read from {attack}'s reconstructions is right for {pct(col[1][-1])} at "
                    f"N={col[0][-1]}."
                )
        figs[name] = {
            "title": f"{fig_id}: reconstructions ({ds}, ObfNet-{arch.upper()})",
            "reading": " ".join(reading),
        }


def _attribute_curves(
    exps: list[Experiment], figs: dict, fdir: Path, chance: float, thr: float, dataset: str = DATASET
) -> None:
    """fig9 (ColorNet) and fig10a/b (NoisyNet, PathNet) with, as dashed extra lines, every other
    attack of the same party that reads the attribute (probes, the attribute read from
    reconstructions, the decoder, inversion); an attribute attack of a party the study never
    plotted gets a figure of its own."""
    party_of = {e.attack: e.party for e in exps if e.kind is Kind.ATTACK and e.dataset == dataset}
    plotted = {party_of[a] for a in STUDY_FIGURE_IDS if a in party_of}
    extras = [
        a
        for a in attacks_present(exps)
        if a in party_of and a not in STUDY_FIGURE_IDS and attack_series(exps, dataset, a)
    ]
    for attack in attacks_present(exps, output="attribute"):
        series = attack_series(exps, dataset, attack)
        if not series:
            continue
        party = party_of[attack]
        if attack not in STUDY_FIGURE_IDS and party in plotted:
            continue  # a dashed line in its party's study figure
        fig_id = STUDY_FIGURE_IDS.get(attack, "fig")
        name = f"{fig_id}_{attack}_fa.png"
        cis = attack_series(exps, dataset, attack, "feature_accuracy_ci")
        others = (
            [a for a in extras if party_of[a] == party and a != attack] if attack in STUDY_FIGURE_IDS else []
        )
        F.fa_vs_bottleneck(
            {f"{attack} ObfNet-{a.upper()}": v for a, v in series.items()},
            fdir / name,
            chance=chance,
            threshold=thr,
            title=f"{fig_id}: {party}'s {attack} F_a vs bottleneck"
            + (f" (dashed: the {party}'s other attacks)" if others else ""),
            intervals={
                f"{attack} ObfNet-{a.upper()}": [
                    dict(zip(*cis.get(a, ([], [])), strict=True)).get(n) for n in ns
                ]
                for a, (ns, _) in series.items()
            },
            reference={
                f"{o} ObfNet-{a.upper()}": v
                for o in others
                for a, v in attack_series(exps, dataset, o).items()
            },
        )
        above = sum(f > thr for _, v in series.values() for f in v)
        total = sum(len(v) for _, v in series.values())
        lo = min((min(v), a) for a, (_, v) in series.items())
        hi = max((max(v), a) for a, (_, v) in series.items())
        reading = (
            f"Every point above the dashed line is a compromised ObfNet: {above} of {total}. F_a ranges "
            f"from {pct(lo[0])} (ObfNet-{lo[1].upper()}) to {pct(hi[0])} (ObfNet-{hi[1].upper()}); chance is "
            f"{pct(chance)}."
        )
        for o in others:
            higher, both = _higher(exps, o, attack, dataset)
            if both:
                reading += f" {o} scores higher than {attack} on {higher} of the {both} ObfNets both ran on."
        figs[name] = {"title": f"{fig_id}: {attack} ({party}) feature accuracy", "reading": reading}


def _higher(exps: list[Experiment], attack: str, than: str, dataset: str = DATASET) -> tuple[int, int]:
    """On how many ObfNets ``attack``'s F_a interval lies above ``than``'s, of those both ran on."""
    on = attacks_by_subject(exps, dataset)
    pairs = [
        (s[attack], s[than])
        for s in on.values()
        if attack in s and than in s and s[attack].metrics.feature_accuracy is not None
    ]
    return sum(compare(a, b) == "beats" for a, b in pairs), len(pairs)


def _embeddings(
    run_dir: Path,
    exps: list[Experiment],
    figs: dict,
    fdir: Path,
    chance: float,
    attribute: str,
    dataset: str = DATASET,
) -> None:
    embedded = [
        e for e in exps if e.kind is Kind.ATTACK and e.output is Output.EMBEDDING and e.dataset == dataset
    ]
    for i, e in enumerate(sorted(embedded, key=lambda e: (e.arch, e.bottleneck))):
        a = _load(run_dir, e.artifacts)
        key = f"{e.attack}/output"
        if key not in a:
            continue
        name = f"fig11{'abcdefgh'[min(i, 7)]}_{e.attack}_{e.arch}_b{e.bottleneck}.png"
        F.tsne_figure(
            a[key].numpy(),
            a[f"{e.attack}/labels/task"].numpy(),
            a[f"{e.attack}/labels/attribute"].numpy(),
            fdir / name,
            title=f"fig11: {e.attack} (perplexity 15) of ObfNet-{e.arch.upper()} (N={e.bottleneck}) outputs on "
            f"{'Colored-MNIST' if dataset == DATASET else dataset} test images",
        )
        emb, raw = e.metrics["embedding"], e.metrics["raw"]
        figs[name] = {
            "title": f"fig11: {e.attack}, ObfNet-{e.arch.upper()} N={e.bottleneck}",
            "reading": f"k-NN finds the digit for {pct(emb['knn_class_acc'])} and, within each digit, the {attribute} "
            f"for {pct(emb['knn_attribute_acc_within_class'])} of points in the embedding "
            f"({pct(raw['knn_attribute_acc_within_class'])} in the raw obfuscated space; chance {pct(chance)}).",
        }


def privacy_utility_points(exps: list[Experiment], dataset: str = DATASET) -> list[dict]:
    """Per ObfNet: utility and the worst case over every attack that reads the attribute
    (attribute attacks and reconstructions), chosen as the verdict tables choose it: the
    highest lower bound of F_a."""
    points = []
    by_subject = attacks_by_subject(exps, dataset)
    for o in exps:
        if o.kind is not Kind.OBFNET or o.dataset != dataset:
            continue
        worst = strongest_by(by_subject.get((o.arch, o.bottleneck), {}).values(), "feature_accuracy")
        if worst is not None:
            points.append(
                {
                    "arch": o.arch,
                    "bottleneck": o.bottleneck,
                    "fa": worst.metrics.feature_accuracy,
                    "utility": o.metrics["obfuscated_test_acc"],
                }
            )
    return points


def make_figures(
    run_dir: Path,
    exps: list[Experiment],
    *,
    chance: float,
    threshold: float,
    attribute: str,
    scaling: dict | None,
    dataset: str = DATASET,
) -> dict[str, dict]:
    """Every figure the results allow; {file: {"title", "reading"}} in report order (``dataset``: the
    one whose ObfNets the study's figures show, Colored-MNIST unless the run had none)."""
    figs: dict[str, dict] = {}
    fdir = run_dir / "figures"
    defended = defence_rows(exps, dataset)
    if defended:
        name = "fig_defences_frontier.png"
        frontier_figure(defended, fdir / name, chance=chance, threshold=threshold)
        figs[name] = {
            "title": "defences: utility against worst-case leakage",
            "reading": target_reading(defended, threshold),
        }
    exps = [e for e in exps if not e.defence]  # the study's figures show its undefended ObfNets
    _reconstructions(run_dir, exps, figs, fdir, dataset)
    _attribute_curves(exps, figs, fdir, chance, threshold, dataset)
    _embeddings(run_dir, exps, figs, fdir, chance, attribute, dataset)
    points = privacy_utility_points(exps, dataset)
    if points:
        name = "fig_privacy_utility.png"
        F.privacy_utility(points, fdir / name, chance=chance, threshold=threshold)
        private = [p for p in points if p["fa"] <= threshold]
        figs[name] = {
            "title": "beyond the study: privacy-utility trade-off",
            "reading": f"{len(private)} of {len(points)} ObfNets have their worst-case {attribute} F_a (the "
            "attack with the highest lower bound, reconstructions included) at or below the line"
            + (
                f"; the most useful of them keeps {pct(max(p['utility'] for p in private))} digit accuracy."
                if private
                else "; none gives privacy at any utility."
            ),
        }
    if scaling and scaling.get("figure") and (run_dir / scaling["figure"]).exists():
        ob = scaling["obfuscators"]
        figs[Path(scaling["figure"]).name] = {
            "title": "fig12: LightNet and DenseNet outputs (scaling study)",
            "reading": f"ResNet50 top-1: clean {pct(scaling['resnet50']['clean_top1'])}, through LightNet "
            f"{pct(ob['lightnet']['obfuscated_top1'])}, through DenseNet {pct(ob['densenet']['obfuscated_top1'])} "
            f"(study: {pct(STUDY_NUMBERS['lightnet_top1'])} and {pct(STUDY_NUMBERS['densenet_top1'])}).",
        }
    return figs
