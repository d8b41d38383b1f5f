"""Text code shared by the layers above: cleaning what comes in (`sanitize`), finding
and redacting personal data (`pii`, `redact`), finding and slotting a conversation's
specifics (`specifics`), cheap text measures (`measures`), the one ROUGE-L (`rouge`),
and the prompt the reply model is shown (`prompt`).

A leaf: it imports nothing of the package but `chatbot.errors`, `chatbot.settings_section`
and itself, so that ingest, the store, dialogue, training and evaluation can all use it.
What to do with a text (store it, send it, score a model) is the callers' job."""
