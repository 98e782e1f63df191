"""The correction file: build and write it (``writer``), audit it (``auditor``), import legacy ROOT maps
(``importer``), apply it to Stage-1 parquet (``apply``) and install it into the analysis (``install``).

Each module is imported by its own name, so ``import lib.correction.writer`` does not pull in uproot
or pyarrow. CLI: ``python -m lib.correction {audit,import,apply,install} ...``.
"""
