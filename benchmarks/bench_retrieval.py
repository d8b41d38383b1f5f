"""Retrieval benchmark: query latency (embedding included) and index build time at
10k, 100k and 1M indexed pairs, HNSW recall@10 against exact search, and the measured
gain of dense+BM25 fusion over dense alone.

Data: the intent files in ../shared/datasets (read-only). Requests are indexed as
pairs (message = request, reply = its intent). Latency: the real MiniLM, one query at
a time. Above the number of real texts, the index is filled with noisy copies of
real vectors (and their texts), so build/search costs are those of the full size.
Fusion: precision@1 / MRR@10 of "the top pair has the query's intent", Banking77
(80/20 stratified split) and CLINC150 (train -> validation, in-scope items only).

    .venv/bin/python benchmarks/bench_retrieval.py              # prints, saves benchmarks/results/retrieval.json
    .venv/bin/python benchmarks/bench_retrieval.py --sizes 10000 --queries 100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets" / "intents"


def read(name):
    return [json.loads(line) for line in (DATASETS / name).open(encoding="utf-8")]


def records_for(rows, start_id=1):
    from chatbot.pairs import PairRecord

    return [
        PairRecord(
            id=start_id + n,
            source=r.get("source", "bench"),
            origin="",
            split="",
            context=[{"text": r["text"]}],
            target=r["intent"],
            content_hash=str(start_id + n),
        )
        for n, r in enumerate(rows)
    ]


def percentiles(values):
    values = np.asarray(values) * 1000
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p95_ms": round(float(np.percentile(values, 95)), 2),
        "mean_ms": round(float(values.mean()), 2),
    }


def filled_vectors(
    base_vectors: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(picks, vectors): `size` unit vectors, the real `base_vectors` first and then noisy
    copies of them (Gaussian noise, std 0.02 per dimension); picks[i] is the base row of i."""
    picks = np.arange(size) % len(base_vectors)
    noise = rng.normal(0, 0.02, (size, base_vectors.shape[1])).astype(np.float32)
    noise[: len(base_vectors)] = 0
    vecs = base_vectors[picks] + noise
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return picks, vecs


def fusion_quality(settings, model, index_rows, query_rows, index_vectors, query_vectors, weights):
    from chatbot.retrieval.retriever import PairRetriever

    retriever = PairRetriever.from_parts(
        settings.retrieval, records_for(index_rows), index_vectors, model
    )
    out = {}
    for weight in weights:
        p1, rr = [], []
        for row, vector in zip(query_rows, query_vectors):
            hits = retriever.search_vector(vector, row["text"], k=10, lexical_weight=weight).hits
            labels = [h.reply_text for h in hits]
            p1.append(labels[:1] == [row["intent"]])
            rr.append(
                next((1 / (i + 1) for i, lab in enumerate(labels) if lab == row["intent"]), 0.0)
            )
        out[str(weight)] = {
            "precision_at_1": round(float(np.mean(p1)), 4),
            "mrr_at_10": round(float(np.mean(rr)), 4),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.5])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for query embedding"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "retrieval.json"
    )
    args = parser.parse_args()
    if not DATASETS.is_dir():
        sys.exit(f"the shared datasets are not at {DATASETS}")

    import torch

    from chatbot.evaluation.intents.routing import LabelledRequest, stratified_split
    from chatbot.models.embedder import load_embedder
    from chatbot.retrieval import faiss_index
    from chatbot.retrieval.embedding import embed_texts
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.settings import load_settings

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings()
    model = load_embedder(settings.paths)
    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": os.getloadavg(),
            "python": platform.python_version(),
        }
    }

    banking, clinc_train, clinc_val = (
        read("banking77.train.jsonl"),
        read("clinc150.train.jsonl"),
        read("clinc150.val.jsonl"),
    )
    texts = [r["text"] for r in banking + clinc_train + clinc_val]
    started = time.perf_counter()
    vectors = embed_texts(model, texts, batch_size=settings.retrieval.batch_size, progress=True)
    embed_seconds = time.perf_counter() - started
    results["embedding"] = {
        "texts": len(texts),
        "seconds": round(embed_seconds, 1),
        "texts_per_second": round(len(texts) / embed_seconds, 1),
    }
    print(
        f"embedding: {len(texts)} texts in {embed_seconds:.1f}s ({len(texts) / embed_seconds:.0f}/s)",
        flush=True,
    )
    vec_of = dict(zip(texts, vectors))

    # Fusion gain (dense vs dense+BM25), on two sets.
    b_items = [LabelledRequest(r["text"], r["intent"]) for r in banking]
    b_index, b_query = stratified_split(b_items, 0.2)
    b_index = [{"text": i.text, "intent": i.intent} for i in b_index]
    b_query = [{"text": i.text, "intent": i.intent} for i in b_query]
    c_index = [r for r in clinc_train if r["intent"] != "oos"]
    c_query = [r for r in clinc_val if r["intent"] != "oos"]
    fusion = {}
    for name, index_rows, query_rows in (
        ("banking77", b_index, b_query),
        ("clinc150", c_index, c_query),
    ):
        fusion[name] = fusion_quality(
            settings,
            model,
            index_rows,
            query_rows,
            np.stack([vec_of[r["text"]] for r in index_rows]),
            np.stack([vec_of[r["text"]] for r in query_rows]),
            args.weights,
        )
        print(
            f"fusion {name}: "
            + ", ".join(
                f"w={w}: P@1 {v['precision_at_1']:.4f} MRR {v['mrr_at_10']:.4f}"
                for w, v in fusion[name].items()
            ),
            flush=True,
        )
    results["fusion"] = fusion

    # Speed at each size.
    rng = np.random.default_rng(0)
    base_rows = banking + clinc_train
    base_vectors = np.stack([vec_of[r["text"]] for r in base_rows])
    queries = [r["text"] for r in clinc_val[: args.queries]]
    speed = {}
    for size in args.sizes:
        picks, vecs = filled_vectors(base_vectors, size, rng)
        rows = [
            {
                "text": base_rows[p]["text"] + ("" if n < len(base_rows) else f" #{n}"),
                "intent": base_rows[p]["intent"],
            }
            for n, p in enumerate(picks)
        ]
        entry = {"estimated_embedding_seconds": round(size / (len(texts) / embed_seconds), 1)}
        for kind in ("exact", "hnsw"):
            t = time.perf_counter()
            dense = faiss_index.build(vecs, settings.retrieval, kind=kind)
            build_seconds = time.perf_counter() - t
            t = time.perf_counter()
            from chatbot.retrieval.lexical import LexicalIndex

            records = records_for(rows)
            lexical = LexicalIndex.build([r.message for r in records])
            lexical_seconds = time.perf_counter() - t
            retriever = PairRetriever(settings.retrieval, records, dense, lexical, model, None)
            for q in queries[:5]:
                retriever.search(q, k=5)  # warm up
            latencies, dense_only = [], []
            for q in queries:
                t = time.perf_counter()
                retriever.search(q, k=5)
                latencies.append(time.perf_counter() - t)
            for q in queries:
                t = time.perf_counter()
                v = retriever.query_vector(q)
                retriever.search_vector(v, q, k=5, lexical_weight=0.0)
                dense_only.append(time.perf_counter() - t)
            item = {
                "faiss_build_seconds": round(build_seconds, 2),
                "bm25_build_seconds": round(lexical_seconds, 2),
                "query_fused": percentiles(latencies),
                "query_dense_only": percentiles(dense_only),
            }
            if kind == "hnsw":
                sample = rng.choice(size, min(500, size), replace=False)
                item["recall_at_10_vs_exact"] = round(
                    faiss_index.recall_at_k(dense, vecs[sample], 10), 4
                )
            entry[kind] = item
            print(
                f"{size} pairs, {kind}: build faiss {build_seconds:.2f}s + bm25 {lexical_seconds:.2f}s; "
                f"query (fused, embedding included) p50 {item['query_fused']['p50_ms']} ms, p95 {item['query_fused']['p95_ms']} ms"
                + (
                    f"; recall@10 vs exact {item['recall_at_10_vs_exact']}"
                    if kind == "hnsw"
                    else ""
                ),
                flush=True,
            )
        speed[str(size)] = entry
    results["speed"] = speed
    results["machine"]["load_average_at_end"] = os.getloadavg()
    save_results(args.out, results)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
