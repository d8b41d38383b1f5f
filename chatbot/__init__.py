"""Self-hosted customer-service assistant: import support history, retrieve, reply, hand off."""

__version__ = "0.1.0"
