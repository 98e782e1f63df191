"""The run stages beside the route: reading (``reduction``), the closure and the Higgs check (``validation``),
the request and output directory checked before any work (``checks``) and what a run changed (``changes``).

They sit above the physics and execution modules of ``lib``, which never import this package; ``lib.route``
chains them and nothing here imports it.
"""
