"""Value ranges of trace columns: the kernels add sizes and times in int64 / float64, so every trace (loaded,
imported or generated) is checked against these before anything runs."""

MAX_TOKENS = 2 ** 40          # prompt and output sizes [tokens]
MAX_ARRIVAL_S = 1e12          # arrival times [s], about 31,700 years
MAX_ID = 2 ** 62              # request and application ids
MAX_REQUESTS = 2 ** 30 - 1    # requests per trace (the reference event order packs a request index in 30 bits)
