"""Numba-jitted numeric kernels of sweepsim.

Everything here is a function of arrays and scalars (``*_nb``), with no I/O and no Python objects;
``sweepsim.engine`` packs configurations into these arrays and unpacks the results.
Read ``simulate_nb.py`` first (the event loop), then ``instance_nb.py`` (batching), ``scheduler_nb.py``
(instance choice) and ``kv_transfer_nb.py`` (KV-cache flows).
"""
