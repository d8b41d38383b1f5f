"""Building and versioning the retrieval index (`chatbot index`): reading the store's
pairs, embedding them, calibrating the out-of-scope gate and the BM25 weight on the
company's validation questions, adapting the embedder (`--adapt`), and writing each
version atomically. Searching a version is `chatbot.retrieval`'s job; this package
depends on it (it calibrates with the real retriever), never the reverse."""
