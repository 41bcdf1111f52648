"""Result tables (requests, instances, summaries with energy and cost), their column names, queries over sweep results, and checks against reference results."""
