"""Evaluation of the assistant's replies on held-out conversations: the same pipeline
as serving (import, index, reply model, dialogue manager) run in a throw-away store,
several variants side by side, figures in a report with plots.

Modules: `items` (which turns are evaluated), `metrics` (text and latency figures),
`variants` (how each variant produces a reply), `replies` (the run), `report` (files
and plots), `record` (keeping a model version's latest evaluation in the store).
Intent routing is evaluated elsewhere (`chatbot.retrieval.intents`)."""
