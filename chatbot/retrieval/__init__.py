"""Retrieval: find the stored past answers that fit a customer's message, searching the
current index version (and reading its files). Building index versions is
`chatbot.indexing`'s job; the intent-routing benchmark is `chatbot.evaluation.intents`'."""
