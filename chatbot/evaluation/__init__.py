"""Evaluation of the assistant's replies on held-out conversations: the same pipeline
as serving (import, index, reply model, dialogue manager) run in a throw-away store,
several variants side by side, figures in a report with plots.

Modules: `items` (which turns are evaluated), `variants` (how each variant answers or
hands off), `metrics` (text and latency figures of what was sent), `intervals` (95%
bootstrap intervals, resampling conversations), `figures` (coverage, quality of the
answered turns, quality at equal footing, paired comparisons), `replies` (the run),
`report` (tables, files and plots), `record` (keeping a model version's latest
evaluation in the store).
Intent routing is evaluated elsewhere (`chatbot.evaluation.intents`)."""
