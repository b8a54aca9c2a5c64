"""kNN evaluation: edgessl's ``knn_predict`` against scikit-learn's ``KNeighborsClassifier``.

8,000 queries against a bank of 5,000 features (D = 512 and 1,024, 10 classes),
Euclidean majority vote with k = 200 and k = 20, on the CPU, measured side by side in
one run. Two kinds of features:

- ``clustered``: class centres plus Gaussian noise (like learned features: votes are
  mostly decisive);
- ``random``: pure Gaussian noise with random labels (the worst case: many tied votes).

Predictions must agree except on ties. Every disagreement is checked in float64 and
classified as a *vote tie* (two classes share the top count among the k nearest: the
libraries break it differently, edgessl by the nearest tied member, scikit-learn by
the smallest label) or a *boundary tie* (the k-th and (k+1)-th distances are equal to
float32 precision, so the neighbour set itself depends on rounding). Anything else is a
failure and the script exits with status 1.

Run: python benchmarks/knn_vs_sklearn.py  (writes benchmarks/results/knn_vs_sklearn.md and .json)
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import sklearn
import torch
from results_io import machine, write_results
from sklearn.neighbors import KNeighborsClassifier

from edgessl.evaluation import knn_predict

BANK, QUERIES, CLASSES = 5_000, 8_000, 10
DIMS = (512, 1024)
KS = (200, 20)
REPEATS = 3  # best of, after one warm-up call
BOUNDARY_TOLERANCE = 1e-5  # relative gap between k-th and (k+1)-th distance counted as a tie


@dataclass
class Case:
    features: str
    dim: int
    k: int
    edgessl_s: float
    sklearn_brute_s: float
    sklearn_auto_s: float
    disagreements: int
    vote_ties: int
    boundary_ties: int
    unexplained: int

    @property
    def ratio_brute(self) -> float:
        return self.sklearn_brute_s / self.edgessl_s

    @property
    def ratio_auto(self) -> float:
        return self.sklearn_auto_s / self.edgessl_s


def make_features(kind: str, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bank features, bank labels and queries as float32 / int64 numpy arrays."""
    rng = np.random.default_rng(seed)
    bank_labels = rng.integers(0, CLASSES, BANK)
    query_labels = rng.integers(0, CLASSES, QUERIES)
    bank = rng.standard_normal((BANK, dim))
    queries = rng.standard_normal((QUERIES, dim))
    if kind == "clustered":
        centres = 0.3 * rng.standard_normal((CLASSES, dim))  # centre gaps ~0.42 of the noise norm
        bank, queries = bank + centres[bank_labels], queries + centres[query_labels]
    return bank.astype(np.float32), bank_labels.astype(np.int64), queries.astype(np.float32)


def best_time(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    fn()
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def classify_disagreement(bank: np.ndarray, labels: np.ndarray, query: np.ndarray, k: int) -> str:
    """'vote' or 'boundary' tie, from exact float64 distances; 'unexplained' otherwise."""
    distances = np.sqrt(((bank.astype(np.float64) - query.astype(np.float64)) ** 2).sum(1))
    order = np.argsort(distances, kind="stable")
    kth, next_ = distances[order[k - 1]], distances[order[k]]
    if next_ - kth <= BOUNDARY_TOLERANCE * kth:
        return "boundary"
    counts = np.bincount(labels[order[:k]], minlength=CLASSES)
    return "vote" if (counts == counts.max()).sum() > 1 else "unexplained"


def run_case(kind: str, dim: int, k: int) -> Case:
    bank, labels, queries = make_features(kind, dim, seed=dim + k)
    bank_t, labels_t, queries_t = torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(queries)
    ours_s, ours = best_time(lambda: knn_predict(bank_t, labels_t, queries_t, CLASSES, k=k).numpy())

    def sklearn_predict(algorithm: str) -> np.ndarray:
        return KNeighborsClassifier(n_neighbors=k, algorithm=algorithm).fit(bank, labels).predict(queries)

    brute_s, brute = best_time(lambda: sklearn_predict("brute"))
    auto_s, auto = best_time(lambda: sklearn_predict("auto"))
    assert np.array_equal(brute, auto), "sklearn brute and auto disagree"
    differing = np.flatnonzero(ours != brute)
    kinds = [classify_disagreement(bank, labels, queries[i], k) for i in differing]
    return Case(
        kind,
        dim,
        k,
        ours_s,
        brute_s,
        auto_s,
        len(differing),
        kinds.count("vote"),
        kinds.count("boundary"),
        kinds.count("unexplained"),
    )


def markdown(cases: list[Case], info: dict[str, object]) -> list[str]:
    lines = [
        "# kNN evaluation: edgessl vs scikit-learn",
        "",
        (
            f"{QUERIES:,} queries against {BANK:,} bank features, {CLASSES} classes, Euclidean majority "
            f"vote, CPU, best of {REPEATS} after a warm-up. Produced by `benchmarks/knn_vs_sklearn.py`."
        ),
        "",
        (
            "| features | D | k | edgessl s | sklearn brute s | sklearn auto s | speed-up (brute) "
            "| speed-up (auto) | disagreements | vote ties | boundary ties | unexplained |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        lines.append(
            f"| {c.features} | {c.dim} | {c.k} | {c.edgessl_s:.3f} | {c.sklearn_brute_s:.3f} "
            f"| {c.sklearn_auto_s:.3f} | {c.ratio_brute:.1f}x | {c.ratio_auto:.1f}x | {c.disagreements} "
            f"| {c.vote_ties} | {c.boundary_ties} | {c.unexplained} |"
        )
    lines += [
        "",
        (
            "Disagreements are checked one by one in float64: a *vote tie* is two classes sharing the top "
            "count (edgessl gives it to the tied class with the nearest member, scikit-learn to the smallest "
            "label); a *boundary tie* is a k-th and (k+1)-th distance within "
            f"{BOUNDARY_TOLERANCE:g} (relative), where float32 rounding decides the neighbour set. "
            "*unexplained* must be 0."
        ),
        "",
        (
            "Why the speed-up is about 2x, not 10x: scikit-learn >= 1.1 runs brute-force Euclidean kNN with "
            "the same algorithm (`ArgKmin`: BLAS matrix products on chunks upcast to float64, then a heap "
            "per row, OpenMP-parallel), so on one CPU the difference left is float32 vs float64 GEMM and "
            "top-k selection. `knn_predict` runs unchanged on a GPU, where the same matrix product and "
            "top-k are far faster; no GPU was available for this run."
        ),
        "",
        (
            "Machine (shared with other jobs while measuring, so absolute times are noisy; the ratios come "
            "from the same run):"
        ),
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
    ]
    return lines


def main() -> int:
    info = machine(
        **{"scikit-learn": sklearn.__version__, "numpy": np.__version__, "python": platform.python_version()}
    )
    cases = []
    for kind in ("clustered", "random"):
        for dim in DIMS:
            for k in KS:
                case = run_case(kind, dim, k)
                cases.append(case)
                print(
                    f"{kind:9s} D={dim:4d} k={k:3d}: edgessl {case.edgessl_s:.3f}s, "
                    f"sklearn brute {case.sklearn_brute_s:.3f}s "
                    f"({case.ratio_brute:.1f}x), auto {case.sklearn_auto_s:.3f}s ({case.ratio_auto:.1f}x); "
                    f"{case.disagreements} disagreements = {case.vote_ties} vote + "
                    f"{case.boundary_ties} boundary ties "
                    f"+ {case.unexplained} unexplained",
                    flush=True,
                )
    payload = {
        "machine": info,
        "cases": [{**asdict(c), "ratio_brute": c.ratio_brute, "ratio_auto": c.ratio_auto} for c in cases],
    }
    write_results("knn_vs_sklearn", payload, markdown(cases, info))
    return 1 if any(c.unexplained for c in cases) else 0


if __name__ == "__main__":
    raise SystemExit(main())
