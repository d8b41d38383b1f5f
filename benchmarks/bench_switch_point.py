"""Where approximate search should replace exact search: the measurement behind
`retrieval.exact_max_pairs`.

For each size (default 10k, 20k, 35k, 50k, 75k, 100k indexed pairs, 384-dim MiniLM
vectors) both dense indexes of `chatbot.retrieval.faiss_index` are built with the
project's settings (exact = IndexFlatIP; HNSW with retrieval.hnsw_m,
hnsw_ef_construction, hnsw_ef_search) and measured:

- search-only latency p50/p95 of one query vector, asking for `retrieval.candidates`
  rows as the retriever does, for three arms: exact and HNSW at the FAISS thread count
  the product runs with (the library default unless --threads), and exact with one
  FAISS thread (for information: FAISS parallelises even a single-query exact search,
  which on a shared 2-core machine costs more than it gains). The arms are interleaved
  (query by query, the order rotating) so the noise of a shared machine hits all alike;
- HNSW build time (exact "build" is a copy);
- HNSW recall@10 against exact search, on held-out queries (CLINC150 validation
  requests, as in the latency loop) and on indexed vectors (as bench_retrieval does).

Once per run, the time to embed one query with MiniLM (one at a time, p50/p95, held-out
CLINC150 validation requests of typical length) is measured too: it is the fixed cost
every search pays on top of the dense search.

Vectors: the same source as bench_retrieval.py: the Banking77 and CLINC150 train
requests embedded with the real MiniLM (--base-texts takes an evenly spaced subset of
both sets), then noisy copies of them above that count.

Rule (fixed before measuring): exact search is kept at a size while
    exact p95 <= BUDGET (5 ms)  or  exact p95 < FACTOR (2) x HNSW p95.
The switch point is the smallest measured size from which, at that size and every
larger one, exact p95 > BUDGET and exact p95 >= FACTOR x HNSW p95, with HNSW recall@10
(held-out queries) >= MIN_RECALL (0.95). Both conditions are required: below the budget
a 2x ratio of sub-millisecond times buys nothing next to the query embedding, and a
slow exact search is only worth replacing when HNSW is clearly faster. The
recommended `exact_max_pairs` is the largest measured size below the switch point (a
measured size, not an interpolation); when no measured size meets the rule it is the
largest measured size (exact is fine at least that far). The decision uses the arms
at the product's thread count; the same rule applied to the one-thread exact arm is
recorded beside it.

Threads: the library defaults (what `chatbot index` and the server use) unless
--threads is given. The thread counts and the load average (at the start, at each size
and at the end) are recorded with the figures.

    .venv/bin/python benchmarks/bench_switch_point.py      # prints, saves benchmarks/results/retrieval_switch.json
    .venv/bin/python benchmarks/bench_switch_point.py --sizes 10000 20000 --queries 100 --base-texts 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_retrieval import DATASETS, filled_vectors, percentiles, read  # noqa: E402
from benchmarks.results_file import save_results  # noqa: E402

EMBED_QUERY_COUNT = 100  # queries embedded one at a time for the embedding cost
RECALL_QUERIES = 500
WARMUP = 20


def interleaved_latencies(arms: dict, queries: np.ndarray) -> dict[str, list[float]]:
    """Search-only seconds per query for each arm (name -> search(query)), the order of
    the arms rotating from one query to the next."""
    names = list(arms)
    for q in queries[:WARMUP]:
        for name in names:
            arms[name](q)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, q in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t = time.perf_counter()
            arms[name](q)
            times[name].append(time.perf_counter() - t)
    return times


def decide(
    sizes: dict[str, dict], budget_ms: float, factor: float, min_recall: float, exact: str = "exact"
) -> dict:
    """Apply the rule of the module docstring to the measured sizes, with the exact
    latencies of arm `exact` ("exact" or "exact_1_thread")."""
    ordered = sorted((int(s), e) for s, e in sizes.items())
    meets = {}
    for size, entry in ordered:
        exact_p95, hnsw_p95 = entry[exact]["search"]["p95_ms"], entry["hnsw"]["search"]["p95_ms"]
        meets[size] = bool(
            exact_p95 > budget_ms
            and exact_p95 >= factor * hnsw_p95
            and entry["hnsw"]["recall_at_10_vs_exact"] >= min_recall
        )
    switch_at = None
    for size, _ in reversed(
        ordered
    ):  # the smallest size from which the rule holds at every larger one
        if not meets[size]:
            break
        switch_at = size
    below = [size for size, _ in ordered if switch_at is None or size < switch_at]
    if switch_at is None:
        note = f"no measured size meets the rule: exact search up to {ordered[-1][0]:,} pairs (the largest measured) at least"
    elif not below:
        note = "the rule already holds at the smallest measured size: measure smaller sizes"
    else:
        note = f"exact up to {below[-1]:,} pairs, HNSW from {switch_at:,} (the next measured size)"
    return {
        "exact_arm": exact,
        "rule_met": {str(s): m for s, m in meets.items()},
        "switch_at": switch_at,
        "exact_max_pairs": below[-1] if below else None,
        "note": note,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 20_000, 35_000, 50_000, 75_000, 100_000]
    )
    parser.add_argument(
        "--queries",
        type=int,
        default=500,
        help="query vectors timed per size (CLINC150 validation)",
    )
    parser.add_argument(
        "--base-texts",
        type=int,
        default=None,
        help="real texts embedded (default: all Banking77 + CLINC150 train, as bench_retrieval)",
    )
    parser.add_argument("--budget-ms", type=float, default=5.0)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--min-recall", type=float, default=0.95)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and FAISS threads (default: the libraries')",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "retrieval_switch.json"
    )
    args = parser.parse_args()
    if not DATASETS.is_dir():  # run_all.py reports a benchmark whose output ends so as skipped
        print(
            f"skipped: the shared datasets are not at {DATASETS} (this benchmark needs ../shared)",
            file=sys.stderr,
        )
        return

    import faiss
    import torch

    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval import faiss_index
    from chatbot.retrieval.embedding import embed_texts
    from chatbot.settings import load_settings

    if args.threads:
        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    settings = load_settings()
    rs = settings.retrieval
    model = load_embedder(settings.paths)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
            "faiss": faiss.__version__,
        },
        "settings": {
            "hnsw_m": rs.hnsw_m,
            "hnsw_ef_construction": rs.hnsw_ef_construction,
            "hnsw_ef_search": rs.hnsw_ef_search,
            "k": rs.candidates,
            "exact_max_pairs_at_run": rs.exact_max_pairs,
        },
        "rule": {
            "budget_ms": args.budget_ms,
            "factor": args.factor,
            "min_recall_at_10": args.min_recall,
            "text": f"switch at the smallest measured size from which (there and above) exact p95 search > "
            f"{args.budget_ms:g} ms and exact p95 >= {args.factor:g} x HNSW p95, with HNSW recall@10 "
            f">= {args.min_recall:g}; exact_max_pairs = the largest measured size below it",
        },
    }

    base_texts = [r["text"] for r in read("banking77.train.jsonl") + read("clinc150.train.jsonl")]
    if args.base_texts and args.base_texts < len(
        base_texts
    ):  # evenly spaced: both sets keep their share
        base_texts = [
            base_texts[i] for i in np.linspace(0, len(base_texts) - 1, args.base_texts).astype(int)
        ]
    query_texts = [r["text"] for r in read("clinc150.val.jsonl")]
    query_texts = query_texts[: max(args.queries, RECALL_QUERIES, EMBED_QUERY_COUNT)]
    started = time.perf_counter()
    base_vectors = embed_texts(model, base_texts, batch_size=rs.batch_size, progress=True)
    query_vectors = embed_texts(model, query_texts, batch_size=rs.batch_size)
    seconds = time.perf_counter() - started
    results["vectors"] = {
        "real_texts": len(base_texts),
        "query_texts": len(query_texts),
        "dim": int(base_vectors.shape[1]),
        "embedding_texts_per_second": round((len(base_texts) + len(query_texts)) / seconds, 1),
    }
    print(f"embedded {len(base_texts)} + {len(query_texts)} texts in {seconds:.1f}s", flush=True)

    # The fixed cost of every search: one query through MiniLM.
    timed = query_texts[:EMBED_QUERY_COUNT]
    for q in timed[:5]:
        embed_texts(model, [q])
    embed_times = []
    for q in timed:
        t = time.perf_counter()
        embed_texts(model, [q])
        embed_times.append(time.perf_counter() - t)
    results["query_embedding"] = {
        "queries": len(timed),
        "mean_chars": round(float(np.mean([len(q) for q in timed])), 1),
        **percentiles(embed_times),
    }
    print(
        f"query embedding (one query, MiniLM): p50 {results['query_embedding']['p50_ms']} ms, "
        f"p95 {results['query_embedding']['p95_ms']} ms",
        flush=True,
    )

    rng = np.random.default_rng(0)
    latency_queries = query_vectors[np.arange(args.queries) % len(query_vectors)]
    sizes: dict[str, dict] = {}
    for size in args.sizes:
        _, vecs = filled_vectors(base_vectors, size, rng)
        t = time.perf_counter()
        exact = faiss_index.build(vecs, rs, kind="exact")
        exact_build = time.perf_counter() - t
        t = time.perf_counter()
        hnsw = faiss_index.build(vecs, rs, kind="hnsw")
        hnsw_build = time.perf_counter() - t
        threads = faiss.omp_get_max_threads()

        def exact_one_thread(q, exact=exact, threads=threads):
            faiss.omp_set_num_threads(1)
            try:
                return exact.search(q, rs.candidates)
            finally:
                faiss.omp_set_num_threads(threads)

        times = interleaved_latencies(
            {
                "exact": lambda q, exact=exact: exact.search(q, rs.candidates),
                "hnsw": lambda q, hnsw=hnsw: hnsw.search(q, rs.candidates),
                "exact_1_thread": exact_one_thread,
            },
            latency_queries,
        )
        sample = rng.choice(size, min(RECALL_QUERIES, size), replace=False)
        entry = {
            "load_average": os.getloadavg(),
            "exact": {
                "build_seconds": round(exact_build, 3),
                "search": percentiles(times["exact"]),
            },
            "exact_1_thread": {"search": percentiles(times["exact_1_thread"])},
            "hnsw": {
                "build_seconds": round(hnsw_build, 2),
                "search": percentiles(times["hnsw"]),
                "recall_at_10_vs_exact": round(
                    faiss_index.recall_at_k(hnsw, query_vectors[:RECALL_QUERIES], 10), 4
                ),
                "recall_at_10_vs_exact_indexed_queries": round(
                    faiss_index.recall_at_k(hnsw, vecs[sample], 10), 4
                ),
            },
        }
        entry["exact_p95_over_hnsw_p95"] = round(
            entry["exact"]["search"]["p95_ms"] / max(entry["hnsw"]["search"]["p95_ms"], 1e-6), 2
        )
        sizes[str(size)] = entry
        e, h = entry["exact"], entry["hnsw"]
        e1 = entry["exact_1_thread"]["search"]
        print(
            f"{size:>9,} pairs: exact p50 {e['search']['p50_ms']:.2f} / p95 {e['search']['p95_ms']:.2f} ms "
            f"(1 thread {e1['p50_ms']:.2f} / {e1['p95_ms']:.2f}) | "
            f"HNSW p50 {h['search']['p50_ms']:.2f} / p95 {h['search']['p95_ms']:.2f} ms, build {h['build_seconds']:.1f}s, "
            f"recall@10 {h['recall_at_10_vs_exact']:.4f} (indexed {h['recall_at_10_vs_exact_indexed_queries']:.4f}) | "
            f"ratio {entry['exact_p95_over_hnsw_p95']:.1f}x",
            flush=True,
        )
        del exact, hnsw, vecs
    results["sizes"] = sizes
    results["decision"] = decide(sizes, args.budget_ms, args.factor, args.min_recall)
    results["decision_exact_1_thread"] = decide(
        sizes, args.budget_ms, args.factor, args.min_recall, "exact_1_thread"
    )
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print(f"rule: {results['rule']['text']}")
    print(
        f"decision: {results['decision']['note']}; exact_max_pairs = {results['decision']['exact_max_pairs']}"
    )
    print(f"(with one FAISS thread for exact search: {results['decision_exact_1_thread']['note']})")
    save_results(args.out, results)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
