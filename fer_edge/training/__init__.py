"""fer_edge.training (PyTorch only; nothing in the runtime imports it).

``readers`` (dataset layouts -> records in the SDK class order), ``images`` (decode once, cached),
``datasets``/``augment`` (samples through the one preprocess function), ``presets`` (recipes),
``train`` (the loop behind ``fer-edge train``), ``checkpoint``, ``metrics``/``evaluate``
(``fer-edge eval``), ``losses``.
"""
