"""The people around the assistant: customers' sessions and feedback, the agents'
queue and their decisions on suggested replies. The pages that show them are in `ui/`."""
