"""Captured traffic joined with the edge's run record: what a party saw, and the truth to score it.

The capture (tap or server log) holds tensors and request ids; the edge record holds, per
request id, which test images it sent and their labels. Only their join can score an
attack, and only the scorer gets the labels: the attacks see the captured tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from obfaudit.errors import ObfauditError
from obfaudit.serve.capture import read_capture
from obfaudit.threat import PARTIES, Party

#: The parties that see each kind of capture (the tap is the eavesdropper on the wire).
SEEN_BY_PARTIES = {"tap": (Party.ADVERSARY, Party.THIRD_PARTY), "server": PARTIES}


@dataclass
class CapturedView:
    train: object
    test: object
    traffic: torch.Tensor
    attribute: str
    task: str
    about: dict
    """What the capture held, for results.json and the report."""


def read_edge_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ObfauditError(f"--edge-record {path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ObfauditError(f"--edge-record {path}: not readable JSON ({e})") from None
    if not isinstance(record, dict) or record.get("obfaudit_edge") != 1:
        raise ObfauditError(f"--edge-record {path}: not an edge.json written by 'obfaudit edge'")
    return record


def captured_view(capture: Path, record_path: Path, *, n_train: int | None = None) -> CapturedView:
    """The captured tensors of one edge run, row for row with the test images they came from."""
    from obfaudit.data.select import labels_match, load_task_data

    z, request, meta = read_capture(capture)
    record = read_edge_record(record_path)
    sent = {r["id"]: (r["start"], r["stop"]) for r in record["requests"]}
    rows, images, matched = [], [], []
    for i, req in enumerate(meta["requests"]):
        span = sent.get(req.get("id"))
        mine = np.flatnonzero(request == i)
        if span is None or len(mine) != span[1] - span[0]:
            continue
        matched.append(req)
        rows.append(mine)
        images.append(np.arange(*span))
    if not matched:
        raise ObfauditError(
            f"none of the {len(meta['requests'])} requests in {capture} was sent by the edge run "
            f"{record.get('run')} ({record_path})"
        )
    d = record["data"]
    train, test, attribute, task = load_task_data(
        d["data"],
        seed=d["split_seed"],
        data_root=Path(d["data_root"]) if d.get("data_root") else None,
        attributes=Path(d["attributes"]) if d.get("attributes") else None,
        size=d.get("size"),
        attribute=d["attribute"],
        n_train=n_train,
        n_test=d["n"],
    )
    if not labels_match(test, record["labels"]):
        raise ObfauditError(
            f"the test images loaded for {record_path} do not carry the labels the edge recorded "
            "(another dataset, data root or split)"
        )
    rows, images = np.concatenate(rows), np.concatenate(images)
    traffic = torch.from_numpy(z[rows])
    test = test.subset(torch.from_numpy(images))
    answered = [
        (req["labels"], np.arange(*sent[req["id"]]))
        for req in matched
        if len(req.get("labels") or []) == sent[req["id"]][1] - sent[req["id"]][0]
    ]
    about = {
        "capture": str(capture),
        "seen_by": meta["seen_by"],
        "where": meta.get("where", ""),
        "parties": list(SEEN_BY_PARTIES.get(meta["seen_by"], ())),
        "requests_captured": len(meta["requests"]),
        "requests_of_this_run": len(matched),
        "requests_sent": len(record["requests"]),
        "unparsed": meta.get("unparsed", 0),
        "tensors": len(rows),
        "datatypes": sorted({r["datatype"] for r in matched}),
        "body_bytes_per_image": sum(r["body_bytes"] for r in matched) / len(rows),
        "edge_record": str(record_path),
        "edge_run": record.get("run"),
        "split_seed": d["split_seed"],
    }
    if answered:
        truth = np.asarray(record["labels"][task])
        seen = np.concatenate([np.asarray(a) for a, _ in answered])
        idx = np.concatenate([i for _, i in answered])
        about["answers_seen"] = int(len(seen))
        about["answers_accuracy"] = float((seen == truth[idx]).mean())
    return CapturedView(train, test, traffic, attribute, task, about)
