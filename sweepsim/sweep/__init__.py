"""Sweeps: jobs and their hashes, the results store, the runner with its progress bar, and the local and Ray backends."""
