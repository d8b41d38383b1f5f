"""Importing support history: read files of several formats, validate, redact PII,
store conversations and build training pairs. Entry point for the app and the CLI:
`chatbot.ingest.importer.import_paths`. Nothing here is imported by `chatbot --help`."""
