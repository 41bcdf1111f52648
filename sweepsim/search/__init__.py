"""Capacity search (``sweepsim search``): SLO objectives (``slo``), the highest rate each configuration serves
within them (``capacity``) and the cheapest configuration for a target rate (``cheapest``)."""
