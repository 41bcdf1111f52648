"""What to simulate: run configurations, experiments and their expressions, the hardware and model catalog, the scheduler table."""
