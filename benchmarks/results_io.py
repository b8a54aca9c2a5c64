"""What every benchmark records about the machine it ran on, and how it writes its result files.

A benchmark's number is only as good as the machine line beside it: the cores, the torch
build and threads, the load other jobs put on the cores. :func:`machine` gives every
script the same facts under the same names, the CPU named by ``edgessl.hardware`` (which
edgessl's own profiler reads); a script adds the facts its numbers also depend on, such as
the versions of the libraries it compares. :func:`write_results` writes
``results/NAME.json`` (the record: every number, the machine) and ``results/NAME.md`` (what
a reader reads), each atomically; a ``--render`` mode rewrites the markdown alone from the
committed JSON with :func:`write_markdown`, leaving the measurement as it was.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

from edgessl.files import atomic_output
from edgessl.hardware import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"


def machine(**extra: object) -> dict[str, object]:
    """The machine facts every result records, then ``extra`` (the script's own, none of the shared names).

    ``load_average_1min`` is read now: taken before the measurement, it is other jobs' load.
    """
    import torch  # here: data_scale's measured child processes import this module, and torch costs them

    facts: dict[str, object] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
    }
    if clash := sorted(facts.keys() & extra.keys()):
        raise ValueError(f"machine(): {clash} are shared facts, not a script's own")
    return facts | extra


def device_name(device: Any) -> str:
    """The CUDA device's name, or ``cpu``: which device a result's numbers were measured on."""
    import torch

    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else "cpu"


def write_markdown(name: str, markdown_lines: list[str], *, folder: Path = RESULTS) -> Path:
    """``folder/NAME.md``: the lines, one newline after each; returns its path."""
    path = folder / f"{name}.md"
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(markdown_lines) + "\n")
    return path


def write_results(
    name: str, record: dict[str, Any], markdown_lines: list[str], *, folder: Path = RESULTS
) -> Path:
    """``folder/NAME.json`` (``record``, indented) and ``folder/NAME.md``; returns the markdown's path."""
    with atomic_output(folder / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return write_markdown(name, markdown_lines, folder=folder)
