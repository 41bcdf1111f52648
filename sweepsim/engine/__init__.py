"""Instance placement, performance tables, and the path that packs configurations into kernel arrays, runs the kernels and unpacks their results."""
