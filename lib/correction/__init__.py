"""The correction file: ``writer`` (build, write, load), ``auditor``, ``importer`` (legacy ROOT maps), ``apply``
(to Stage-1 parquet), ``install``; each imported by its own name, so the writer does not pull in uproot or pyarrow.
"""
