"""Retrieval: find the stored past answers that fit a customer's message."""
