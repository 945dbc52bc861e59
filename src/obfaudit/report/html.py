"""report.html: one self-contained page (figures embedded), built from saved results."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from obfaudit._io import atomic_write_text
from obfaudit.cost import format_size, human

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.bad{color:#b03a2e;font-weight:600} .ok{color:#1e8449;font-weight:600} .na{color:#888}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#444;font-size:.92em}
.note{background:#f8f8f8;border-left:3px solid #999;padding:.4em .8em}
code{background:#f4f4f4;padding:0 .2em}
"""


def esc(x) -> str:
    return html.escape(str(x))


def pct(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return '<span class="na">n/a</span>'
    return f"{100 * v:.1f}%"


def verdict_cell(v: str | None) -> str:
    if not v:
        return '<td class="na">-</td>'
    cls = "bad" if v == "compromised" else "ok"
    return f'<td class="l {cls}">{esc(v)}</td>'


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{esc(path.name)}" src="data:image/png;base64,{data}">'


def _verdict_table(exps: list[dict], dataset: str) -> str:
    obfs = sorted(
        (e for e in exps if e["kind"] == "obfnet" and e.get("dataset") == dataset),
        key=lambda e: (e["arch"], e["bottleneck"]),
    )
    if not obfs:
        return ""
    attacks = [
        a
        for a in ("colornet", "noisynet", "pathnet", "recnet")
        if any(x["kind"] == "attack" and x.get("dataset") == dataset and x["attack"] == a for x in exps)
    ]
    head = "".join(
        f"<th>{a} F_a</th>" if a != "recnet" else "<th>RecNet SSIM</th><th>RecNet colour</th>"
        for a in attacks
    )
    rows = []
    for o in obfs:
        cells = [
            f'<td class="l">ObfNet-{o["arch"].upper()}</td><td>{o["bottleneck"]}</td>',
            f"<td>{pct(o['metrics'].get('clean_test_acc'))}</td><td>{pct(o['metrics'].get('obfuscated_test_acc'))}</td>",
        ]
        verdicts = []
        for a in attacks:
            x = next(
                (
                    x
                    for x in exps
                    if x["kind"] == "attack"
                    and x.get("dataset") == dataset
                    and x.get("arch") == o["arch"]
                    and x.get("bottleneck") == o["bottleneck"]
                    and x["attack"] == a
                ),
                None,
            )
            m = x["metrics"] if x else {}
            if x and x.get("verdict"):
                verdicts.append(x["verdict"])
            if a == "recnet":
                cells.append(
                    f"<td>{m.get('ssim', float('nan')):.3f}</td><td>{pct(m.get('colour_recovered'))}</td>"
                )
            else:
                cells.append(f"<td>{pct(m.get('feature_accuracy'))}</td>")
        overall = "compromised" if "compromised" in verdicts else ("not compromised" if verdicts else None)
        rows.append("<tr>" + "".join(cells) + verdict_cell(overall) + "</tr>")
    return (
        f"<table><tr><th class=l>ObfNet</th><th>N</th><th>clean acc</th><th>obfuscated acc</th>{head}"
        f"<th class=l>verdict</th></tr>{''.join(rows)}</table>"
    )


def _controls_table(exps: list[dict]) -> str:
    ctl = [e for e in exps if e["kind"] == "control"]
    if not ctl:
        return ""
    rows = []
    for e in ctl:
        m = e["metrics"]
        score = (
            pct(m.get("feature_accuracy"))
            if "feature_accuracy" in m
            else f"SSIM {m.get('ssim', float('nan')):.3f}"
        )
        rows.append(
            f"<tr><td class=l>{esc(e['dataset'])}</td><td class=l>{esc(e['subject'])}</td>"
            f"<td class=l>{esc(e['attack'])}</td><td class=l>{esc(e['party'])}</td><td>{score}</td>"
            f"{verdict_cell(e.get('verdict'))}</tr>"
        )
    return (
        "<table><tr><th class=l>data</th><th class=l>control</th><th class=l>attack</th><th class=l>party</th>"
        f"<th>score</th><th class=l>verdict</th></tr>{''.join(rows)}</table>"
    )


def _cost_table(exps: list[dict]) -> str:
    rows = [e["metrics"] for e in exps if e["kind"] == "cost" and "params" in e["metrics"]]
    if not rows:
        return ""
    out = []
    for r in rows:
        s = r.get("study", {})
        study = (
            f"<td>{human(s['params'])}</td><td>{s['flops']:.3g}</td><td>{format_size(s['size_mb'])}</td>"
            if s
            else "<td>-</td><td>-</td><td>-</td>"
        )
        out.append(
            f"<tr><td class=l>{esc(r['model'])}</td><td>{human(r['params'])}</td><td>{r['flops']:.3g}</td>"
            f"<td>{format_size(r['size_mb'])}</td>{study}</tr>"
        )
    notes = "".join(f"<li><b>{esc(r['model'])}</b>: {esc(r['note'])}</li>" for r in rows if r.get("note"))
    return (
        "<table><tr><th class=l>model (224x224x3, N=512)</th><th>params</th><th>FLOPs</th><th>size</th>"
        "<th>study params</th><th>study FLOPs</th><th>study size</th></tr>"
        + "".join(out)
        + "</table>"
        + (f"<ul>{notes}</ul>" if notes else "")
    )


def write_report(run_dir: Path, results: dict, records: dict) -> Path:
    """Write ``run_dir/report.html`` from the results of :func:`write_outputs`."""
    cfg = results.get("config", {})
    preset = cfg.get("preset", {})
    exps = results["experiments"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>obfaudit report: {esc(preset.get('name', ''))}"
        f"</title><style>{CSS}</style></head><body>"
    ]
    parts.append("<h1>obfaudit: ObfNet privacy audit</h1>")
    parts.append(
        f"<p>Reproduction of <i>Privacy-Preserving Machine Learning in IoT: A Study of Data Obfuscation "
        f"Methods</i> (SECRYPT 2025), preset <b>{esc(preset.get('name'))}</b>: {esc(preset.get('description', ''))}. "
        f"Generated {esc(results.get('generated'))} by obfaudit {esc(cfg.get('obfaudit'))}.</p>"
    )
    if cfg.get("data"):
        parts.append(
            f"<p class=note><b>Data:</b> {esc(cfg['data'])}. Colored-MNIST multiplies each image by one of "
            "7 palette colours (balanced); the adversary's Noisy and Path proxies hold "
            f"{preset.get('proxy_n')} generated images each.</p>"
        )
    infmode = (
        "dropout active (the reference Keras behaviour)"
        if preset.get("infnet_dropout")
        else "eval mode (dropout off)"
    )
    parts.append(
        "<h2>Settings</h2><table>"
        + "".join(
            f"<tr><td class=l>{esc(k)}</td><td class=l>{esc(v)}</td></tr>"
            for k, v in (
                ("seed", cfg.get("seed")),
                ("device", cfg.get("device")),
                (
                    "bottlenecks (Colored-MNIST / MNIST)",
                    f"{preset.get('bottlenecks')} / {preset.get('mnist_bottlenecks')}",
                ),
                (
                    "epochs: InfNet / ObfNet / attacks / proxy attacks",
                    f"{preset.get('infnet_epochs')} / {preset.get('obfnet_epochs')} / {preset.get('attack_epochs')} / {preset.get('proxy_epochs')}",
                ),
                (
                    "early stopping (10% hold-out)",
                    f"InfNet/ObfNet: {preset.get('model_patience') or 'off, every epoch runs'}; attack networks: "
                    f"{preset.get('attack_patience') or 'off'}"
                    + (" (proxy-trained: 1)" if preset.get("attack_patience") else ""),
                ),
                ("precision", preset.get("precision")),
                ("InfNet while training ObfNets", infmode),
                (
                    "compromise threshold",
                    f"{pct(results.get('threshold'))} (twice chance {pct(results.get('chance'))}, rounded up)",
                ),
                ("torch / threads", f"{cfg.get('torch')} / {cfg.get('threads')}"),
            )
        )
        + "</table>"
    )
    found = results.get("findings", [])
    if found:
        rows = []
        for f in found:
            r = f["reproduced"]
            cell = (
                '<td class="na">undecided</td>'
                if r is None
                else ('<td class="ok">reproduced</td>' if r else '<td class="bad">not reproduced</td>')
            )
            rows.append(
                f"<tr><td class=l>{esc(f['claim'])}</td>{cell}<td class=l>{esc(f['evidence'])}</td></tr>"
            )
        parts.append(
            "<h2>The study's findings, checked</h2><table><tr><th class=l>claim</th><th>here</th>"
            f"<th class=l>evidence from this run</th></tr>{''.join(rows)}</table>"
        )
    for ds in ("colored-mnist", "mnist"):
        t = _verdict_table(exps, ds)
        if t:
            parts.append(
                f"<h2>Verdicts: {esc(ds)}</h2>"
                "<p>Each ObfNet's utility (InfNet digit accuracy on clean and obfuscated test images) and "
                "each attack's score. An ObfNet is compromised when any colour attack exceeds the "
                "threshold.</p>" + t
            )
    ctl = _controls_table(exps)
    if ctl:
        parts.append(
            "<h2>Controls</h2><p>The same attacks on the identity transform (sends the image: leaks "
            "everything) and the null transform (sends zeros: keeps nothing) give the scale.</p>" + ctl
        )
    figs = results.get("figures", {})
    if figs:
        parts.append("<h2>Figures</h2>")
        for name, meta in figs.items():
            path = run_dir / "figures" / name
            if path.exists():
                parts.append(
                    f"<figure><h3>{esc(meta['title'])}</h3>{_img(path)}"
                    f"<figcaption>{esc(meta['reading'])}</figcaption></figure>"
                )
    cost = _cost_table(exps)
    if cost:
        parts.append(
            "<h2>Table 1: cost at 224x224x3</h2><p>Parameters, FLOPs (one image, multiply-add = 2, "
            "counted by torch.utils.flop_counter on the meta device) and float32 size, beside the "
            "study's figures.</p>" + cost
        )
    scaling = records.get("scaling", {}).get("result")
    if scaling:
        rows = "".join(
            f"<tr><td class=l>{esc(k)}</td><td>{human(v['params'])}</td><td>{pct(v['obfuscated_top1'])}</td></tr>"
            for k, v in scaling["obfuscators"].items()
        )
        parts.append(
            f"<h2>Scaling study</h2><p>{scaling['images']['train']} training and {scaling['images']['test']} "
            f"validation images at {scaling['size']}x{scaling['size']}, {scaling['classes']} classes. "
            f"ResNet50 clean top-1: {pct(scaling['resnet50']['clean_top1'])}.</p>"
            f"<table><tr><th class=l>obfuscator</th><th>params</th><th>ResNet50 top-1 on its output</th></tr>{rows}</table>"
        )
    timing = sorted(((n, r.get("seconds", 0)) for n, r in records.items()), key=lambda t: -t[1])[:8]
    parts.append(
        "<h2>Run</h2><p>Stages with the longest compute (seconds, as first computed): "
        + ", ".join(f"{esc(n)} {s:.0f}" for n, s in timing)
        + ". All numbers are in <code>results.json</code> / <code>results.csv</code>; models in "
        "<code>models/</code> (safetensors).</p></body></html>"
    )
    path = run_dir / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path
