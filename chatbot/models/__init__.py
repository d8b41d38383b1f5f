"""Locating, preparing and loading the models that ship inside Python packages.

Nothing here downloads: every model comes from a local path (a package's files, the
converted cache, or a directory given in the settings). Training and inference
policies live elsewhere.
"""
