"""Intent routing and its evaluation: route each customer request to the intent of
the labelled requests it is closest to, or hand it off as out of scope.

Reads labelled-request files (`{"text", "intent"}` JSON lines; `intent` = "oos" marks
an out-of-scope request), builds a router from the training file, chooses the
out-of-scope threshold on validation items (the `--val` file; when it is absent, the
out-of-fold routings of the training file under 5-fold cross-validation, or a
stratified slice of it for `finetune`; never the test file), and
scores the test file: top-1 accuracy, macro-F1, and, where the test has oos items,
out-of-scope recall and in-scope accuracy at that threshold; optionally the same on
a deterministically typo-noised copy of the test requests.

Routers ("method"):
  fusion    feature fusion (`features`): TF-IDF word and character n-grams
            beside the plain embedding, a linear SVM on top; the default, because
            it measurably beats logreg (docs/retrieval.md has the figures);
  knn       nearest labelled request in a FAISS index of the plain embeddings;
  logreg    logistic regression on the plain embeddings;
  finetune  MiniLM fine-tuned on the training labels (`finetune`), then logistic
            regression on the fine-tuned embeddings fused with nearest-centroid
            cosines. Not the default: under the 8-minute budget on 2 shared
            CPU cores it has not yet measurably beaten logreg (see docs/retrieval.md).
The confidence of a routing is the router's best in-scope probability (cosine for
knn); for fusion it fuses two out-of-scope signals: the SVM margin of the best
in-scope intent over the `oos` intent (where the training set has one) plus
`similarity_weight` x the mean cosine of the 3 nearest in-scope training requests.
An item is out of scope when its confidence is below the threshold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import numpy as np

from chatbot.errors import InputError
from chatbot.evaluation.intents.features import LexicalDenseFeatures
from chatbot.evaluation.intents.finetune import fine_tune_classifier
from chatbot.indexing.gate import calibrate
from chatbot.retrieval.embedding import embed_texts
from chatbot.retrieval.scope import ScopeCalibration

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

OOS = "oos"
METHODS = ("fusion", "knn", "logreg", "finetune")
DEFAULT_METHOD = "fusion"


@dataclass(frozen=True)
class LabelledRequest:
    text: str
    intent: str
    id: str | None = None


def read_intents(path: Path | str) -> list[LabelledRequest]:
    """Labelled requests from a JSON-lines file; InputError names the file and line."""
    path = Path(path)
    items: list[LabelledRequest] = []
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=str(path)) from None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not valid JSON ({exc.msg})", path=str(path), line=number
                ) from None
            if not isinstance(record, dict):
                raise InputError("expected a JSON object", path=str(path), line=number)
            text, intent = record.get("text"), record.get("intent")
            if not isinstance(text, str) or not text.strip():
                raise InputError('missing or empty "text"', path=str(path), line=number)
            if not isinstance(intent, str) or not intent.strip():
                raise InputError('missing or empty "intent"', path=str(path), line=number)
            items.append(LabelledRequest(text.strip(), intent.strip(), record.get("id")))
    if not items:
        raise InputError("no labelled requests", path=str(path))
    return items


# ---------------------------------------------------------------- typo noise

_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_KEYBOARD):
    for _c, _ch in enumerate(_row):
        near = [_row[j] for j in (_c - 1, _c + 1) if 0 <= j < len(_row)]
        near += [
            _KEYBOARD[rr][_c] for rr in (_r - 1, _r + 1) if 0 <= rr < 3 and _c < len(_KEYBOARD[rr])
        ]
        _NEIGHBOURS[_ch] = "".join(near)


def typo_noise(text: str, *, rate: float = 0.25) -> str:
    """A deterministic typo-noised copy of `text`: each word of 3+ letters gets, with
    probability `rate`, one of: swapped neighbours, a dropped, doubled or
    neighbouring-key letter. Seeded by the text itself, so runs agree."""
    rng = random.Random(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big"))
    words = text.split(" ")
    for i, word in enumerate(words):
        if len(word) < 3 or not word.isalpha() or rng.random() >= rate:
            continue
        j = rng.randrange(len(word) - 1)
        kind = rng.randrange(4)
        if kind == 0:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
        elif kind == 1:
            word = word[:j] + word[j + 1 :]
        elif kind == 2:
            word = word[:j] + word[j] + word[j:]
        else:
            near = _NEIGHBOURS.get(word[j].lower(), "")
            if near:
                word = word[:j] + rng.choice(near) + word[j + 1 :]
        words[i] = word
    return " ".join(words)


# ---------------------------------------------------------------- routers


@dataclass
class Routing:
    labels: list[str]  # best in-scope intent per request
    confidence: np.ndarray  # higher = more likely in scope


class RouterOptions(TypedDict, total=False):
    """The keyword options of `IntentRouter` that `evaluate` and `cross_validate` pass on."""

    max_train_seconds: float
    epochs: float
    batch_size: int
    seed: int
    progress: bool
    cache: dict[str, np.ndarray] | None
    svm_c: float
    embedding_weight: float
    similarity_weight: float


ModelFactory = Callable[[], "SentenceTransformer"]


class IntentRouter:
    """Routes requests to the intents of a training set."""

    def __init__(
        self,
        model: SentenceTransformer,
        method: str = DEFAULT_METHOD,
        *,
        max_train_seconds: float = 480.0,
        epochs: float = 3.0,
        batch_size: int = 64,
        seed: int = 0,
        progress: bool = False,
        cache: dict[str, np.ndarray] | None = None,
        svm_c: float = 0.3,
        embedding_weight: float = 2.0,
        similarity_weight: float = 3.0,
    ):
        if method not in METHODS:
            raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
        self.model = model
        self.method = method
        self.max_train_seconds = max_train_seconds
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress
        # fusion's settings, chosen by cross-validation on Banking77 and CLINC150 train
        # (docs/retrieval.md); none was tuned on one set alone.
        self.svm_c = svm_c
        self.embedding_weight = embedding_weight
        self.similarity_weight = similarity_weight
        self.train_report: dict[str, Any] = {}
        # text -> vector, shared across folds; only for the frozen embedder.
        self.cache = cache if method != "finetune" else None

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.cache is None:
            return embed_texts(self.model, list(texts), batch_size=128, progress=self.progress)
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for text, vector in zip(
                missing, embed_texts(self.model, missing, batch_size=128, progress=self.progress)
            ):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 0), np.float32)

    def fit(self, items: Sequence[LabelledRequest]) -> IntentRouter:
        started = time.monotonic()
        texts = [i.text for i in items]
        self.classes = sorted({i.intent for i in items})
        index = {c: n for n, c in enumerate(self.classes)}
        y = np.array([index[i.intent] for i in items])
        self.in_scope = np.array([c != OOS for c in self.classes])
        if self.method == "finetune":
            report = fine_tune_classifier(
                self.model,
                texts,
                y.tolist(),
                epochs=self.epochs,
                batch_size=self.batch_size,
                max_seconds=self.max_train_seconds,
                seed=self.seed,
                progress=self.progress,
            )
            self.train_report["fine_tune"] = report.__dict__
        vectors = self._embed(texts)
        self._vectors, self._y = vectors, y
        if self.method in ("logreg", "finetune"):
            from sklearn.linear_model import LogisticRegression

            self._clf = LogisticRegression(C=10.0, max_iter=300).fit(vectors, y)
        if self.method == "finetune":
            centroids = np.zeros((len(self.classes), vectors.shape[1]), dtype=np.float32)
            np.add.at(centroids, y, vectors)
            self._centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True).clip(
                1e-9
            )
        if self.method == "fusion":
            from sklearn.svm import LinearSVC

            self._features = LexicalDenseFeatures(self.embedding_weight).fit(texts)
            self._clf = LinearSVC(C=self.svm_c).fit(self._features.transform(texts, vectors), y)
        if self.method in ("knn", "fusion"):
            import faiss

            self._faiss = faiss.IndexFlatIP(vectors.shape[1])
            self._faiss.add(
                np.ascontiguousarray(vectors if self.method == "knn" else vectors[self.in_scope[y]])
            )
        self.train_report["seconds"] = time.monotonic() - started
        return self

    def route(self, texts: Sequence[str]) -> Routing:
        vectors = self._embed(texts)
        if self.method == "knn":
            return self._route_knn(vectors)
        if self.method == "fusion":
            return self._route_fusion(texts, vectors)
        proba = self._clf.predict_proba(vectors)
        if self.method == "finetune":
            cos = vectors @ self._centroids.T
            soft = np.exp(20.0 * (cos - cos.max(1, keepdims=True)))
            proba = 0.5 * proba + 0.5 * soft / soft.sum(1, keepdims=True)
        proba = proba.copy()
        proba[:, ~self.in_scope] = -1.0
        best = proba.argmax(1)
        return Routing([self.classes[b] for b in best], proba[np.arange(len(best)), best])

    def _route_fusion(self, texts: Sequence[str], vectors: np.ndarray) -> Routing:
        margins = self._clf.decision_function(self._features.transform(texts, vectors))
        if margins.ndim == 1:  # two classes: one margin, positive for classes[1]
            margins = np.column_stack([-margins, margins])
        inside = np.where(self.in_scope, margins, -np.inf)
        best = inside.argmax(1)
        confidence = inside[np.arange(len(best)), best]
        if (~self.in_scope).any():
            confidence = confidence - margins[:, ~self.in_scope].max(1)
        if self._faiss.ntotal and self.similarity_weight:
            sims, _ = self._faiss.search(np.ascontiguousarray(vectors), min(3, self._faiss.ntotal))
            confidence = confidence + self.similarity_weight * sims.mean(1)
        return Routing([self.classes[b] for b in best], confidence)

    def _route_knn(self, vectors: np.ndarray) -> Routing:
        k = min(10, len(self._y))
        sims, rows = self._faiss.search(np.ascontiguousarray(vectors), k)
        labels, confidence = [], np.zeros(len(vectors))
        for n in range(len(vectors)):
            in_rows = [
                (s, r) for s, r in zip(sims[n], rows[n]) if r >= 0 and self.in_scope[self._y[r]]
            ]
            out_top = max(
                (s for s, r in zip(sims[n], rows[n]) if r >= 0 and not self.in_scope[self._y[r]]),
                default=-1.0,
            )
            if in_rows:
                s, r = in_rows[0]
                labels.append(self.classes[self._y[r]])
                confidence[n] = s - max(0.0, out_top - s)
            else:
                labels.append(next(c for c in self.classes if c != OOS))
                confidence[n] = -1.0
        return Routing(labels, confidence)


# ---------------------------------------------------------------- evaluation


def stratified_split(
    items: Sequence[LabelledRequest], fraction: float, seed: int = 0
) -> tuple[list[LabelledRequest], list[LabelledRequest]]:
    """(kept, held out): `fraction` of every intent held out, deterministically."""
    by_intent: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        by_intent.setdefault(item.intent, []).append(n)
    rng = random.Random(seed)
    held: set[int] = set()
    for intent in sorted(by_intent):
        rows = by_intent[intent][:]
        rng.shuffle(rows)
        held.update(rows[: max(1, round(len(rows) * fraction))] if len(rows) > 1 else [])
    return [it for n, it in enumerate(items) if n not in held], [
        it for n, it in enumerate(items) if n in held
    ]


def stratified_folds(
    items: Sequence[LabelledRequest], folds: int, seed: int = 0
) -> list[list[int]]:
    by_intent: dict[str, list[int]] = {}
    for n, item in enumerate(items):
        by_intent.setdefault(item.intent, []).append(n)
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for intent in sorted(by_intent):
        rows = by_intent[intent][:]
        rng.shuffle(rows)
        for j, row in enumerate(rows):
            out[(offset + j) % folds].append(row)
        offset += len(rows)
    return [sorted(f) for f in out]


def score(
    routing: Routing, items: Sequence[LabelledRequest], calibration: ScopeCalibration | None
) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    truth = np.array([i.intent for i in items])
    pred = np.array(routing.labels)
    inside = truth != OOS
    result: dict[str, Any] = {
        "n": len(items),
        "n_in_scope": int(inside.sum()),
        "n_oos": int((~inside).sum()),
    }
    if inside.any():
        result["accuracy"] = float((pred[inside] == truth[inside]).mean())
        result["macro_f1"] = float(f1_score(truth[inside], pred[inside], average="macro"))
    if calibration is not None and (~inside).any():
        rejected = np.asarray(calibration.out_of_scope(routing.confidence))
        result["in_scope_accuracy"] = (
            float(((pred == truth) & ~rejected)[inside].mean()) if inside.any() else None
        )
        result["oos_recall"] = float(rejected[~inside].mean())
        final = np.where(rejected, OOS, pred)
        result["accuracy_with_oos"] = float((final == truth).mean())
    return result


@dataclass
class IntentEvaluation:
    method: str
    clean: dict[str, Any]
    noisy: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    validation: str = ""
    train_seconds: float = 0.0
    train_report: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def evaluate(
    model_factory: ModelFactory,
    train: Sequence[LabelledRequest],
    test: Sequence[LabelledRequest],
    val: Sequence[LabelledRequest] | None = None,
    *,
    method: str = DEFAULT_METHOD,
    noise: str | None = None,
    val_fraction: float = 0.1,
    calibration_folds: int = 5,
    min_oos_recall: float | None = None,
    **router_options: Unpack[RouterOptions],
) -> IntentEvaluation:
    """Train on `train`, choose the out-of-scope threshold on validation routings,
    score `test`. The validation routings are those of `val`; when `val` is absent and
    the test needs a threshold, the out-of-fold routings of `train` under
    `calibration_folds`-fold cross-validation (a frozen embedder makes that cheap), or
    for `finetune` those of a `val_fraction` slice carved from train. The threshold
    criterion is `chatbot.indexing.gate.calibrate`'s (`min_oos_recall`). `model_factory()` returns a
    fresh embedder (fine-tuning changes it)."""
    needs_threshold = any(i.intent == OOS for i in test)
    if not any(i.intent != OOS for i in train):
        raise InputError("the training file has no in-scope requests")
    if len({i.intent for i in train}) < 2:
        raise InputError(
            "the training file needs at least two intents to route between ('oos' counts as one)"
        )
    validation = "none needed (the test has no oos items)"
    routed, val_truth = None, None
    if val is not None:
        validation = f"{len(val)} requests from --val"
    elif needs_threshold and method == "finetune":
        train, val = stratified_split(train, val_fraction)
        validation = (
            f"{len(val)} requests carved from --train ({val_fraction:.0%} of every intent, seed 0)"
        )
    elif needs_threshold:
        model_factory, router_options = _sharing_one_embedder(model_factory, router_options)
        routed, val_truth = _out_of_fold_routings(
            model_factory, train, calibration_folds, method, router_options
        )
        validation = f"out-of-fold routings of the {len(train)} --train requests ({calibration_folds}-fold, seed 0)"
    router = IntentRouter(model_factory(), method, **router_options).fit(train)
    if val is not None:
        routed, val_truth = router.route([i.text for i in val]), np.array([i.intent for i in val])
    calibration = None
    if (
        routed is not None
        and val_truth is not None
        and (val_truth == OOS).any()
        and (val_truth != OOS).any()
    ):
        calibration = calibrate(
            routed.confidence,
            val_truth != OOS,
            accepted_correct=np.array(routed.labels) == val_truth,
            min_oos_recall=min_oos_recall,
        )
    elif needs_threshold:
        raise InputError(
            "the test has oos items but the validation requests have none to choose a threshold on"
        )
    clean = score(router.route([i.text for i in test]), test, calibration)
    noisy = None
    if noise == "typo":
        noised = [LabelledRequest(typo_noise(i.text), i.intent, i.id) for i in test]
        noisy = score(router.route([i.text for i in noised]), noised, calibration)
    elif noise is not None:
        raise ValueError(f"unknown noise {noise!r}")
    return IntentEvaluation(
        method,
        clean,
        noisy,
        calibration.to_dict() if calibration else None,
        validation,
        router.train_report.get("seconds", 0.0),
        router.train_report,
        {
            "train": len(train),
            "val": len(val) if val is not None else 0,
            "test": len(test),
            "intents": len({i.intent for i in train} - {OOS}),
        },
    )


def _sharing_one_embedder(
    model_factory: ModelFactory, router_options: RouterOptions
) -> tuple[ModelFactory, RouterOptions]:
    """(factory, options) under which every router uses one embedder and one text ->
    vector cache, so each text is embedded once; only for a frozen embedder."""
    shared = model_factory()
    options: RouterOptions = {"cache": {}, **router_options}
    return (lambda: shared), options


def _out_of_fold_routings(
    model_factory: ModelFactory,
    items: Sequence[LabelledRequest],
    folds: int,
    method: str,
    router_options: RouterOptions,
) -> tuple[Routing, np.ndarray]:
    """Each item routed by a router trained on the other folds."""
    labels: list[str] = [""] * len(items)
    confidence = np.zeros(len(items))
    for rows in stratified_folds(items, folds):
        held = set(rows)
        router = IntentRouter(model_factory(), method, **router_options).fit(
            [it for n, it in enumerate(items) if n not in held]
        )
        routed = router.route([items[n].text for n in rows])
        for n, label, conf in zip(rows, routed.labels, routed.confidence):
            labels[n], confidence[n] = label, conf
    return Routing(labels, confidence), np.array([i.intent for i in items])


def cross_validate(
    model_factory: ModelFactory,
    items: Sequence[LabelledRequest],
    folds: int,
    *,
    method: str = DEFAULT_METHOD,
    noise: str | None = None,
    min_oos_recall: float | None = None,
    **router_options: Unpack[RouterOptions],
) -> dict[str, Any]:
    """`folds`-fold stratified cross-validation on one labelled file. With a frozen
    embedder (every method but finetune) every text is embedded once for all folds."""
    per_fold: list[dict[str, Any]] = []
    if method != "finetune":
        model_factory, router_options = _sharing_one_embedder(model_factory, router_options)
    for n, held_rows in enumerate(stratified_folds(items, folds)):
        held = set(held_rows)
        test = [items[i] for i in held_rows]
        train = [it for i, it in enumerate(items) if i not in held]
        result = evaluate(
            model_factory,
            train,
            test,
            None,
            method=method,
            noise=noise,
            min_oos_recall=min_oos_recall,
            **router_options,
        )
        log.info("fold %d/%d: %s", n + 1, folds, result.clean)
        per_fold.append(result.to_dict())
    summary: dict[str, Any] = {}
    for part in ("clean", "noisy"):
        rows = [f[part] for f in per_fold if f.get(part)]
        if not rows:
            continue
        keys = [k for k in rows[0] if isinstance(rows[0][k], float)]
        summary[part] = {
            k: {
                "mean": float(np.mean([r[k] for r in rows])),
                "std": float(np.std([r[k] for r in rows])),
            }
            for k in keys
        }
    return {"method": method, "folds": folds, "summary": summary, "per_fold": per_fold}
