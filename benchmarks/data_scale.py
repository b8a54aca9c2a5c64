"""Data at scale: the decode-once cache on image folders of 10k, 50k and 200k real images at 96 px.

The folders hold symbolic links to the real CIFAR-10 training JPEGs (32x32, from
``../shared/data/cifar10/train.zip``), each image linked several times under new names
past 50,000, in the ImageFolder layout (``<class>/<name>.jpg``); every image is decoded
and resized to 96x96 as a user's photos would be. For each size, each in fresh processes
started the way a user starts them:

* **build**: a cold ``read_split_arrays(folder, "unlabeled", 96)`` into an empty cache:
  seconds, images/s, peak RSS of the building process and of its busiest worker;
* **train, warm cache**: ``edgessl train`` (SimCLR, ShuffleNetV2, batch 64, 20 steps):
  seconds from launching the command to the end of its first step, and its peak RSS;
* **sharing**: one, then two such runs at once, each held after its 20 steps once it has
  read every image of the split (as an epoch would); their proportional set sizes (PSS,
  shared pages divided among the processes that map them), summed;
* **speed** (10k only): training images/s from the memory map against the same run with
  the split copied into private memory first (the in-memory path), interleaved
  A/B/A/B; and what gathering a batch from the map costs against a whole step.

And how to decode: images/s per core of PIL in one process, in a pool of worker
processes and in a pool of threads, with and without ``Image.draft`` on 1024x768 JPEGs
(photos larger than the training size), and torchvision's ``decode_jpeg`` + resize on
both sizes for comparison.

Targets (issue "data of any size"): peak RSS at 200k within 1.5 GB of the 10k figure;
two processes < 1.3 x one process's memory; first step within 10 s at 200k with a warm
cache; no loss of training images/s. Writes benchmarks/results/data_scale.md and .json.

Run alone (it times things):
    python benchmarks/data_scale.py [--sizes 10000 50000 200000] [--workdir /tmp/data-scale]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from results_io import machine, write_results

NAME = "data_scale"
CIFAR_ZIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10" / "train.zip"
SIZE = 96
TRAIN_ARGS = ["--method", "simclr", "--backbone", "shufflenetv2", "--batch-size", "64", "--epochs", "100"]
TRAIN_ARGS += ["--image-size", str(SIZE), "--monitor-every", "0", "--no-progress", "--no-plots"]
STEPS = 20
SPEED_STEPS = (10, 60)  # images/s timed from the end of step 10 to the end of step 60
SPEED_REPEATS = 4  # interleaved runs of each path (a single run's rate varies by ~10% on this VM)
MIB = 1024 * 1024


# ----------------------------------------------------------------------------- data


def extract_cifar(workdir: Path) -> Path:
    """The 50,000 CIFAR-10 training JPEGs, extracted once under ``workdir/cifar``."""
    root = workdir / "cifar"
    if not (root / ".complete").is_file():
        with zipfile.ZipFile(CIFAR_ZIP) as archive:
            archive.extractall(root)
        (root / ".complete").touch()
    return root / "train"


def make_folder(cifar: Path, target: Path, count: int) -> Path:
    """``count`` links, class-balanced, to the CIFAR images (each repeated under a new name past 50,000)."""
    if (target / ".complete").is_file():
        return target
    classes = sorted(p.name for p in cifar.iterdir() if p.is_dir())
    files = {name: sorted((cifar / name).iterdir()) for name in classes}
    for name in classes:
        (target / name).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        name = classes[index % len(classes)]
        serial = index // len(classes)
        image = files[name][serial % len(files[name])]
        link = target / name / f"{image.stem}_{serial // len(files[name])}.jpg"
        if not link.exists():
            link.symlink_to(image)
    (target / ".complete").touch()
    return target


# ----------------------------------------------------------------------------- children


def emit(event: str, **values: Any) -> None:
    print("BENCH " + json.dumps({"event": event, "time": time.time(), **values}), flush=True)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def anonymous_mib() -> float:
    """This process's private (anonymous) resident memory now: RSS less the mapped file pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def watch_anonymous_peak() -> dict[str, float]:
    """Poll :func:`anonymous_mib` every 5 ms in a daemon thread; the returned dict holds its peak.

    RSS (and ``ru_maxrss``) also counts the page-cache pages of the memory map a process has
    touched; on a kernel with large page-cache folios a random row maps a whole folio, so a
    few steps "resident" most of the file although those pages are shared by every process
    and reclaimable. The anonymous part is the memory each process holds on its own.
    """
    import threading

    peak = {"mib": anonymous_mib()}

    def poll() -> None:
        while True:
            peak["mib"] = max(peak["mib"], anonymous_mib())
            time.sleep(0.005)

    threading.Thread(target=poll, daemon=True).start()
    return peak


def child_build(folder: str) -> None:
    from edgessl.data import read_split_arrays

    started = time.perf_counter()
    split = read_split_arrays(folder, "unlabeled", image_size=SIZE)
    emit(
        "built",
        seconds=time.perf_counter() - started,
        rows=len(split),
        built=split.cache.built,
        peak_rss_mib=peak_rss_mib(),
    )


def child_train(folder: str, out: str, steps: int, hold: bool, in_memory: bool) -> None:
    """``edgessl train`` as a user runs it, with its step wrapped to report timings (and hold, for PSS)."""
    import atexit
    import dataclasses

    import numpy as np
    import torch

    import edgessl.data
    from edgessl.cli import main
    from edgessl.training.step import TrainStep

    loaded: dict[str, Any] = {}
    read = edgessl.data.read_split_arrays

    def reading(*args: Any, **kwargs: Any) -> Any:
        split = read(*args, **kwargs)
        if in_memory:  # the in-memory path: a private copy of the split
            split = dataclasses.replace(split, images=np.array(split.images))
        loaded["images"] = torch.from_numpy(split.images)
        return split

    edgessl.data.read_split_arrays = reading
    real_call, ends = TrainStep.__call__, []

    def timed(self: TrainStep, *args: Any, **kwargs: Any) -> Any:
        out = real_call(self, *args, **kwargs)
        out.loss.item()  # the step is done when its loss is
        ends.append(time.time())
        if len(ends) == 1:
            emit("first_step")
        if len(ends) == steps:
            report(ends)
        return out

    def report(ends: list[float]) -> None:
        first, last = SPEED_STEPS
        if len(ends) > last:
            emit("speed", images_per_second=64 * (last - first) / (ends[last - 1] - ends[first - 1]))
        step_ms = 1000 * statistics.median(b - a for a, b in itertools.pairwise(ends[1:]))
        images = loaded["images"]
        gathers = []
        for seed in range(30):
            index = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:64]
            started = time.perf_counter()
            images[index].contiguous()
            gathers.append(1000 * (time.perf_counter() - started))
        emit("gather", gather_ms=statistics.median(gathers), step_ms=step_ms)
        if hold:
            for start in range(0, len(images), 4096):  # every image read once, as in an epoch
                images[start : start + 4096].sum()
            emit("ready", pid=os.getpid())
            sys.stdin.readline()

    TrainStep.__call__ = timed
    anonymous = watch_anonymous_peak()
    atexit.register(lambda: emit("exit", peak_rss_mib=peak_rss_mib(), peak_anonymous_mib=anonymous["mib"]))
    main(["train", "--data", folder, "--out", out, "--max-steps", str(steps), *TRAIN_ARGS])


def child_torchvision_decode(files_list: str) -> None:
    """torchvision's CPU ``decode_jpeg`` + antialiased resize, one thread: images/s."""
    import torch
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms.v2.functional import center_crop, resize

    torch.set_num_threads(1)
    files = Path(files_list).read_text().splitlines()
    started = time.perf_counter()
    for name in files:
        image = decode_jpeg(read_file(name))
        side = min(image.shape[-2:])
        resize(center_crop(image, [side, side]), [SIZE, SIZE], antialias=True)
    emit("decoded", images_per_second=len(files) / (time.perf_counter() - started))


# ----------------------------------------------------------------------------- parent


def run_child(args: list[str], env: dict[str, str]) -> tuple[float, list[dict[str, Any]]]:
    started = time.time()
    done = subprocess.run(
        [sys.executable, __file__, *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise SystemExit(f"child {args} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return started, events(done.stdout)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (the forkserver's decode workers are grandchildren)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, pending = [], [pid]
    while pending:
        for child in parents.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def peak_of(pid: int) -> float:
    """A live process's peak RSS (VmHWM) in MiB, 0 when it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_build_child(folder: Path, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """The cold build, and the highest peak RSS any of its worker processes reached (polled from /proc)."""
    child = subprocess.Popen(
        [sys.executable, __file__, "_build", str(folder)], env=env, stdout=subprocess.PIPE, text=True
    )
    worker_peaks: dict[int, float] = {}
    while child.poll() is None:
        for pid in descendants(child.pid):
            worker_peaks[pid] = max(worker_peaks.get(pid, 0.0), peak_of(pid))
        time.sleep(0.2)
    if child.returncode:
        raise SystemExit(f"build of {folder} failed")
    built = event(events(child.stdout.read()), "built")
    return built, max(worker_peaks.values(), default=0.0)


def events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in stdout.splitlines() if line.startswith("BENCH ")]


def event(found: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(e for e in found if e["event"] == name)


def pss_mib(pid: int) -> dict[str, float]:
    """A process's proportional set size in MiB: in all, of anonymous memory, of mapped files."""
    fields = {"Pss:": "all", "Pss_Anon:": "anonymous", "Pss_File:": "file"}
    found = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key = line.split()[0]
        if key in fields:
            found[fields[key]] = int(line.split()[1]) / 1024
    return found


def held_runs(
    folder: Path, workdir: Path, env: dict[str, str], count: int, in_memory: bool
) -> dict[str, float]:
    """Summed PSS (MiB) of ``count`` training runs at once, each held after its steps with every image
    read."""
    flags = ["--hold"] + (["--in-memory"] if in_memory else [])
    for index in range(count):
        subprocess.run(["rm", "-rf", str(workdir / f"held-{index}")], check=True)
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "_train", str(folder), str(workdir / f"held-{index}"), *flags],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for index in range(count)
    ]
    for child in children:
        for line in child.stdout:
            if line.startswith("BENCH ") and json.loads(line[6:])["event"] == "ready":
                break
        else:
            raise SystemExit(f"held run {child.args} ended before it was ready")
    each = [pss_mib(child.pid) for child in children]
    for child in children:
        child.communicate("\n")
    return {key: sum(pss[key] for pss in each) for key in each[0]}


def measure_size(cifar: Path, workdir: Path, count: int, speed: bool) -> dict[str, Any]:
    folder = make_folder(cifar, workdir / f"folder-{count}", count)
    env = {**os.environ, "EDGESSL_CACHE": str(workdir / f"cache-{count}")}
    subprocess.run(["rm", "-rf", env["EDGESSL_CACHE"]], check=True)
    built, worker_peak = run_build_child(folder, env)
    row: dict[str, Any] = {
        "images": count,
        "pixel_mib": count * 3 * SIZE * SIZE / MIB,
        "build_seconds": built["seconds"],
        "build_images_per_second": count / built["seconds"],
        "build_peak_rss_mib": built["peak_rss_mib"],
        "build_worker_peak_rss_mib": worker_peak,
    }
    subprocess.run(["rm", "-rf", str(workdir / f"run-{count}")], check=True)
    started, found = run_child(["_train", str(folder), str(workdir / f"run-{count}")], env)
    row["first_step_seconds"] = event(found, "first_step")["time"] - started
    row["train_peak_rss_mib"] = event(found, "exit")["peak_rss_mib"]
    row["train_peak_anonymous_mib"] = event(found, "exit")["peak_anonymous_mib"]
    row["gather_ms"], row["step_ms"] = (event(found, "gather")[k] for k in ("gather_ms", "step_ms"))
    one = held_runs(folder, workdir, env, 1, in_memory=False)
    two = held_runs(folder, workdir, env, 2, in_memory=False)
    row.update(pss_one_mib=one["all"], pss_two_mib=two["all"], pss_ratio=two["all"] / one["all"])
    row.update(pss_file_one_mib=one["file"], pss_file_two_mib=two["file"])
    row.update(pss_anonymous_one_mib=one["anonymous"], pss_anonymous_two_mib=two["anonymous"])
    if speed:
        row.update(speed_against_in_memory(folder, workdir, env))
    return row


def speed_against_in_memory(folder: Path, workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    speeds: dict[str, list[float]] = {"map": [], "memory": []}
    steps = str(SPEED_STEPS[1] + 1)
    for _ in range(SPEED_REPEATS):
        for mode, measured in speeds.items():
            extra = ["--in-memory"] if mode == "memory" else []
            out = str(workdir / f"speed-{mode}")
            subprocess.run(["rm", "-rf", out], check=True)
            _, found = run_child(["_train", str(folder), out, "--steps", steps, *extra], env)
            measured.append(event(found, "speed")["images_per_second"])
    one = held_runs(folder, workdir, env, 1, in_memory=True)
    two = held_runs(folder, workdir, env, 2, in_memory=True)
    return {
        "map_images_per_second": statistics.median(speeds["map"]),
        "memory_images_per_second": statistics.median(speeds["memory"]),
        "map_over_memory": statistics.median(speeds["map"]) / statistics.median(speeds["memory"]),
        "map_runs_images_per_second": speeds["map"],
        "memory_runs_images_per_second": speeds["memory"],
        "memory_pss_one_mib": one["all"],
        "memory_pss_two_mib": two["all"],
        "memory_pss_ratio": two["all"] / one["all"],
    }


def decode_rates(cifar: Path, workdir: Path) -> dict[str, float]:
    """Images/s per core of each way to decode, on 4,000 CIFAR JPEGs (and 200 large ones for ``draft``)."""
    from PIL import Image

    from edgessl.data.decode import decode_image

    files = [str(p) for name in sorted(cifar.iterdir()) for p in sorted(name.iterdir())[:400]]
    cores = len(os.sched_getaffinity(0))
    rates = {"cores": cores}

    def timed(run: Any, count: int) -> float:
        started = time.perf_counter()
        run()
        return count / (time.perf_counter() - started)

    rates["pil_one_process"] = timed(lambda: [decode_image(f, SIZE) for f in files], len(files))
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(decode_image, files[:cores], [SIZE] * cores))  # start the workers
        rates["pil_process_pool_per_core"] = (
            timed(lambda: list(pool.map(decode_image, files, [SIZE] * len(files), chunksize=64)), len(files))
            / cores
        )
    with ThreadPoolExecutor(cores) as pool:
        rates["pil_thread_pool_per_core"] = (
            timed(lambda: list(pool.map(lambda f: decode_image(f, SIZE), files)), len(files)) / cores
        )
    large = workdir / "large"
    large.mkdir(exist_ok=True)
    big = []
    for index, name in enumerate(files[:200]):
        path = large / f"{index}.jpg"
        if not path.exists():
            Image.open(name).convert("RGB").resize((1024, 768), Image.Resampling.BICUBIC).save(
                path, quality=90
            )
        big.append(str(path))
    rates["pil_large_with_draft"] = timed(lambda: [decode_image(f, SIZE) for f in big], len(big))

    def without_draft(path: str) -> None:
        from PIL import ImageOps

        with Image.open(path) as image:
            ImageOps.fit(image.convert("RGB"), (SIZE, SIZE), Image.Resampling.BILINEAR)

    rates["pil_large_without_draft"] = timed(lambda: [without_draft(f) for f in big], len(big))
    for key, listed in (("torchvision_one_thread", files), ("torchvision_large_one_thread", big)):
        listing = workdir / f"decode-{key}.txt"
        listing.write_text("\n".join(listed))
        _, found = run_child(["_torchvision", str(listing)], dict(os.environ))
        rates[key] = event(found, "decoded")["images_per_second"]
    return rates


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    by_size = {row["images"]: row for row in rows}
    smallest, largest = by_size[min(by_size)], by_size[max(by_size)]
    lines = []
    for what in (
        "build_peak_rss_mib",
        "build_worker_peak_rss_mib",
        "train_peak_rss_mib",
        "train_peak_anonymous_mib",
    ):
        grew = largest[what] - smallest[what]
        lines.append(
            f"{what} grows {grew:,.0f} MiB from {smallest['images']:,} to {largest['images']:,} images "
            f"(target: within 1,536 MiB): {'met' if grew <= 1536 else 'NOT met'}"
        )
    for row in rows:
        lines.append(
            f"{row['images']:,} images: 2 processes use {row['pss_ratio']:.2f}x one process's PSS "
            f"(target < 1.3): {'met' if row['pss_ratio'] < 1.3 else 'NOT met'}; mapped files alone "
            f"{row['pss_file_two_mib'] / row['pss_file_one_mib']:.2f}x, private memory "
            f"{row['pss_anonymous_two_mib'] / row['pss_anonymous_one_mib']:.2f}x"
        )
    lines.append(
        f"first step {largest['first_step_seconds']:.1f} s after launch at {largest['images']:,} images "
        f"(target <= 10 s): {'met' if largest['first_step_seconds'] <= 10 else 'NOT met'}"
    )
    for row in rows:
        if "map_over_memory" in row:
            lines.append(
                f"training images/s from the map / in memory: {row['map_over_memory']:.3f} "
                "(target: no loss, >= ~0.97 within noise): "
                f"{'met' if row['map_over_memory'] >= 0.97 else 'NOT met'}"
            )
        lines.append(
            f"{row['images']:,} images: gathering a batch from the map costs {row['gather_ms']:.2f} ms of a "
            f"{row['step_ms']:.0f} ms step ({100 * row['gather_ms'] / row['step_ms']:.2f}%; target <= 5%)"
        )
    return lines


def markdown(rows: list[dict[str, Any]], rates: dict[str, float], info: dict[str, object]) -> list[str]:
    lines = [
        "# Data at scale: the decode-once memory-mapped cache",
        "",
        (
            f"Machine: {info['cpu']}, {info['logical_cores']} cores, {info['memory_gib']:.0f} GiB; "
            f"load average {info['load_average_1min']:.2f} at the start; {info['date']}. "
            "Run alone. `python benchmarks/data_scale.py`; method in the module docstring."
        ),
        "",
        (
            "| images | pixels (MiB) | build (s) | build images/s | build peak RSS: builder / worker (MiB) "
            "| first step after launch, warm (s) | train peak RSS: all / private (MiB) "
            "| PSS 1 run / 2 runs (MiB) | ratio | of which mapped files, 1 / 2 runs (MiB) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['images']:,} | {row['pixel_mib']:,.0f} | {row['build_seconds']:.1f} "
            f"| {row['build_images_per_second']:,.0f} "
            f"| {row['build_peak_rss_mib']:,.0f} / {row['build_worker_peak_rss_mib']:,.0f} "
            f"| {row['first_step_seconds']:.1f} "
            f"| {row['train_peak_rss_mib']:,.0f} / {row['train_peak_anonymous_mib']:,.0f} "
            f"| {row['pss_one_mib']:,.0f} / {row['pss_two_mib']:,.0f} | {row['pss_ratio']:.2f} "
            f"| {row['pss_file_one_mib']:,.0f} / {row['pss_file_two_mib']:,.0f} |"
        )
    lines += [
        "",
        (
            "Train peak RSS *all* is `ru_maxrss`: it counts the page-cache pages of the map a process "
            "has touched, which on this kernel (large page-cache folios) soon is most of the file, "
            "although those pages are shared by every process and reclaimable. *Private* is the peak "
            "of anonymous memory (RssAnon, polled every 5 ms): what each process holds on its own. "
            "PSS splits shared pages among the processes that map them; the mapped-file column shows "
            "the dataset's pages counted once for two runs, and the rest of the ratio is each run's "
            "own torch, model and activations."
        ),
    ]
    for row in rows:
        if "map_over_memory" in row:
            lines += [
                "",
                (
                    f"At {row['images']:,} images, training from the map vs from a private in-memory copy "
                    f"(median of {SPEED_REPEATS} interleaved runs each, "
                    f"steps {SPEED_STEPS[0]}-{SPEED_STEPS[1]}): "
                    f"{row['map_images_per_second']:.1f} vs {row['memory_images_per_second']:.1f} images/s "
                    f"(ratio {row['map_over_memory']:.3f}; runs: map "
                    f"{', '.join(f'{v:.0f}' for v in row['map_runs_images_per_second'])}, in memory "
                    f"{', '.join(f'{v:.0f}' for v in row['memory_runs_images_per_second'])}). "
                    "Two in-memory runs use "
                    f"{row['memory_pss_two_mib']:,.0f} MiB PSS against {row['memory_pss_one_mib']:,.0f} "
                    f"for one ({row['memory_pss_ratio']:.2f}x)."
                ),
            ]
    lines += [
        "",
        (
            f"Decoding (images/s per core, {rates['cores']} cores, 32 px CIFAR JPEGs to {SIZE} px; "
            "*large*: 1024x768 JPEGs made from them):"
        ),
        "",
        "| way | images/s per core |",
        "|---|---|",
    ]
    for key, value in rates.items():
        if key != "cores":
            lines.append(f"| {key.replace('_', ' ')} | {value:,.0f} |")
    lines += ["", "## Verdicts", "", *[f"- {line}" for line in verdicts(rows)]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "edgessl-data-scale")
    parser.add_argument("--no-decode", action="store_true", help="skip the decoder comparison")
    args = parser.parse_args()
    if not CIFAR_ZIP.is_file():
        raise SystemExit(f"needs the CIFAR-10 images at {CIFAR_ZIP}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    info = machine(memory_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3)
    cifar = extract_cifar(args.workdir)
    rates = {} if args.no_decode else decode_rates(cifar, args.workdir)
    rows = []
    for count in args.sizes:
        rows.append(measure_size(cifar, args.workdir, count, speed=count == min(args.sizes)))
        print(json.dumps(rows[-1]), flush=True)
    record = {"machine": info, "decode": rates, "rows": rows}
    print(f"wrote {write_results(NAME, record, markdown(rows, rates or {'cores': 0}, info))}")


def child_main(argv: list[str]) -> None:
    """The measured processes (``_build``, ``_train``, ``_torchvision``), started by :func:`main`."""
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    build = sub.add_parser("_build")
    build.add_argument("folder")
    build.set_defaults(run=lambda a: child_build(a.folder))
    train = sub.add_parser("_train")
    train.add_argument("folder")
    train.add_argument("out")
    train.add_argument("--steps", type=int, default=STEPS)
    train.add_argument("--hold", action="store_true")
    train.add_argument("--in-memory", action="store_true")
    train.set_defaults(run=lambda a: child_train(a.folder, a.out, a.steps, a.hold, a.in_memory))
    decode = sub.add_parser("_torchvision")
    decode.add_argument("files")
    decode.set_defaults(run=lambda a: child_torchvision_decode(a.files))
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        child_main(sys.argv[1:])
    else:
        main()
