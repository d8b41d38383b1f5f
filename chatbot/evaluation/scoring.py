"""Scoring what each variant sent: per turn, ROUGE-L, sentence BLEU and the embedding
similarity to the real agent's reply (answered turns only), and whether the sent reply
or its citations point to the help document the agent sent; then the sums with their
intervals and paired comparisons (`figures`). The metrics themselves are `metrics`';
producing the replies is `variants`'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatbot.evaluation import metrics as M
from chatbot.evaluation.figures import TurnScores, summarise
from chatbot.evaluation.intervals import Resampler
from chatbot.evaluation.items import EvalItem
from chatbot.evaluation.variants import Prediction
from chatbot.text.rouge import rouge_l

if TYPE_CHECKING:
    from chatbot.retrieval.retriever import PairRetriever
    from chatbot.store.database import Database


def doc_meta(database: Database) -> dict[int, dict[str, str | None]]:
    """conversation id -> the document its agent sent, for the train conversations that record one."""
    from sqlalchemy import select

    from chatbot.evaluation.items import doc_of
    from chatbot.store.schema import Conversation

    out: dict[int, dict[str, str | None]] = {}
    with database.session() as session:
        for cid, meta in session.execute(select(Conversation.id, Conversation.meta)):
            doc_id, doc_url = doc_of(meta)
            if doc_id or doc_url:
                out[cid] = {"doc_id": doc_id, "doc_url": doc_url}
    return out


def doc_applies(item: EvalItem) -> bool:
    """The document is scored on the turn where the real agent sent it."""
    if item.doc_url:
        return M.text_points_to(item.reference, item.doc_url)
    return item.doc_id is not None


def score(
    items: list[EvalItem],
    predictions: dict[str, list[Prediction]],
    retriever: PairRetriever,
    doc_meta: dict[int, dict[str, str | None]],
    batch_size: int,
    resampler: Resampler,
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Score what each variant sent (answered turns only), then sum up (`figures`)."""
    import numpy as np

    from chatbot.retrieval.embedding import embed_texts

    batch = batch_size
    references = [i.reference for i in items]
    ref_vectors = embed_texts(retriever.model, references, batch_size=batch)
    applies = np.asarray([doc_applies(i) for i in items], dtype=bool)
    turns = [{**item.to_dict(), "variants": {}} for item in items]
    scores: dict[str, TurnScores] = {}
    for name, preds in predictions.items():
        n = len(preds)
        answered = np.asarray([p.answered for p in preds], dtype=bool)
        sims = np.zeros(n)
        sent = [i for i in range(n) if answered[i]]
        if sent:
            vectors = embed_texts(retriever.model, [preds[i].text for i in sent], batch_size=batch)
            sims[sent] = M.cosine_rows(vectors, ref_vectors[sent])
        rouge, bleu = np.zeros(n), np.zeros(n)
        stats = M.bleu_statistics([p.text if p.answered else "" for p in preds], references)
        stats[~answered] = 0
        doc = np.zeros((3, n), dtype=bool)
        for i, (item, pred, turn) in enumerate(zip(items, preds, turns, strict=True)):
            row: dict[str, Any] = {"answered": pred.answered}
            if pred.answered:
                rouge[i] = rouge_l(pred.text, item.reference)
                bleu[i] = M.sentence_bleu(pred.text, item.reference)
                row.update(
                    rouge_l=round(float(rouge[i]), 4),
                    bleu=round(float(bleu[i]), 2),
                    embedding_similarity=round(float(sims[i]), 4),
                )
            else:  # nothing was sent as an answer: nothing to score
                row.update(rouge_l=None, bleu=None, embedding_similarity=None)
            if applies[i]:
                cited = [_cited_doc(doc_meta, c["conversation_id"]) for c in pred.citations]
                match = (
                    M.doc_match(item.doc_id, item.doc_url, pred.text, cited)
                    if pred.answered
                    else {"in_text": False, "cited": False, "any": False}
                )
                doc[:, i] = (match["any"], match["in_text"], match["cited"])
                row["document"] = match
            turn["variants"][name] = {**pred.to_dict(), "seconds": round(pred.seconds, 4), **row}
        scores[name] = TurnScores(
            answered=answered,
            rouge_l=rouge,
            embedding_similarity=sims,
            sentence_bleu=bleu,
            bleu_stats=stats,
            seconds=np.asarray([p.seconds for p in preds], dtype=np.float64),
            doc_applies=applies,
            doc_any=doc[0],
            doc_in_text=doc[1],
            doc_cited=doc[2],
            decisions=[p.decision for p in preds],
            model_version=next((p.model_version for p in preds if p.model_version), None),
        )
    figures, comparisons = summarise(resampler, scores)
    return figures, comparisons, turns


def _cited_doc(
    doc_meta: dict[int, dict[str, str | None]], conversation_id: int | None
) -> dict[str, str | None]:
    """The document the cited past conversation's agent sent ({} when none)."""
    return dict(doc_meta.get(conversation_id, {})) if conversation_id is not None else {}
