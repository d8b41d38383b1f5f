"""The dialogue manager's stages, one job each, in the order a message meets them:

    admit -> intake -> gate -> follow_up -> acts -> cache -> retrieve
          -> understand (or scope, on an index without answer classes) -> parts
          -> compose (score, draft, screen) -> decide -> check -> persist

Each stage is a small class built once from the parts it needs (settings, store,
retriever...) whose `run` takes typed inputs, mostly the `Turn`
(`chatbot.dialogue.turn`), and returns a typed output: a `Reply` that settles the
message, or None to let the next stage try, or what the next stage takes
(`Retrieved`, `Understanding`, `Composed`). The order is `chatbot.dialogue.manager`'s."""
