"""``obfaudit serve``: the study's server, an InfNet behind the Open Inference Protocol."""

from __future__ import annotations

import argparse

from obfaudit.commands._base import Command, Interface, pick
from obfaudit.commands._options import add, non_negative_int, positive_int
from obfaudit.serve.jobs import ServeJob


def add_arguments(p: argparse.ArgumentParser) -> None:
    add(
        p,
        ServeJob,
        ["infnet", "name", "host", "port", "token", "max_body", "max_batch", "log", "threads", "device"],
        infnet={"required": True, "metavar": "MODEL"},
        port={"type": non_negative_int},
        max_body={"type": positive_int, "metavar": "BYTES"},
        max_batch={"type": positive_int},
        threads={"type": positive_int},
        log={"metavar": "FILE"},
    )


def run(args: argparse.Namespace, ui: Interface) -> None:
    from obfaudit.serve.jobs import serve

    serve(pick(args, ServeJob), announce=ui.announce)


COMMAND = Command(
    "serve",
    "serve an InfNet over the Open Inference Protocol (KServe V2 REST)",
    "Serve a saved InfNet over the Open Inference Protocol (KServe V2 REST, with binary tensors): the server "
    "of the study's system. Bad requests get a 4xx and a JSON error.",
    add_arguments,
    run,
)
