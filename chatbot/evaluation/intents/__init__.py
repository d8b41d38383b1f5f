"""The offline intent-routing benchmark (`chatbot eval intents`): route labelled
requests to intents with a frozen or fine-tuned embedder and score the routing,
out-of-scope threshold included. Nothing in serving uses it; serving search is
`chatbot.retrieval`'s job."""
