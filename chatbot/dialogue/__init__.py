"""Dialogue: answer one customer message at a time, from storing it to the decision
(answer, flag for review, hold, hand off, or stay silent). `DialogueManager` in
`chatbot.dialogue.manager` is the entry point; this package imports nothing heavy."""
