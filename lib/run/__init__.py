"""The run stages beside the route: reading (``reduction``), the closure and the Higgs check, and the output directory's checks.

``reduction`` (executors, reading and its cache), ``closure`` and ``higgs`` (the validation
stages), ``outputs`` (whether a run may write into its output directory, and its provenance),
``preflight`` (the request checked before any file is read) and ``changes`` (what a run changed)
sit above the physics and execution modules of ``lib``, which never import this package;
``lib.route`` chains them and nothing here imports it.
"""
