"""``obfaudit tap``: an eavesdropper on the wire, recording what the edge sends."""

from __future__ import annotations

import argparse

from obfaudit.commands._base import Command, Interface, pick
from obfaudit.commands._options import add, positive_float
from obfaudit.serve.jobs import TapJob


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        TapJob,
        ["listen", "upstream", "capture", "flush_seconds"],
        upstream={"required": True, "metavar": "HOST:PORT"},
        capture={"required": True, "metavar": "FILE"},
        listen={"metavar": "HOST:PORT"},
        flush_seconds={"type": positive_float},
    )


def run(args: argparse.Namespace, ui: Interface) -> None:
    from obfaudit.serve.jobs import tap

    tap(pick(args, TapJob), announce=ui.announce)


COMMAND = Command(
    "tap",
    "forward traffic to a server and record the tensors it carries",
    "An eavesdropper on the wire: forwards every request to the upstream server unchanged and records the "
    "obfuscated tensors (and the server's labels) to a safetensors capture, which 'obfaudit audit --traffic' "
    "attacks.",
    add_arguments,
    run,
)
