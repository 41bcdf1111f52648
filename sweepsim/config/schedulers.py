"""The schedulers: one row each, with everything the rest of sweepsim needs to know about them.

- ``code``: the kernel's ``kernels.enums.Scheduler`` policy (variants share one: the ethernet and overlap
  schedulers differ from their base only in link bandwidth);
- ``co_located``: both phases of a request run on one instance of the "all" pool (baseline and ORCA start
  states); otherwise the scheduler needs prompt and token pools (splitwise start states);
- ``link_gib``: KV-transfer link bandwidth [GiB/s] as SplitwiseSim's scheduler configs ("overlap" = x10;
  the reference's kv_token_jsq config instantiates the overlap class), None for co-located schedulers.
"""
from dataclasses import dataclass

from kernels.enums import Scheduler as Code


@dataclass(frozen=True)
class Scheduler:
    name: str
    code: int
    co_located: bool
    link_gib: float | None


SCHEDULERS = {s.name: s for s in (
    Scheduler("round_robin", Code.ROUND_ROBIN, True, None),
    Scheduler("random", Code.RANDOM, True, None),
    Scheduler("jsq", Code.JSQ, True, None),
    Scheduler("token_jsq", Code.TOKEN_JSQ, True, None),
    Scheduler("kv_round_robin", Code.KV_ROUND_ROBIN, False, 200.0),
    Scheduler("kv_round_robin_ethernet", Code.KV_ROUND_ROBIN, False, 12.5),
    Scheduler("kv_jsq", Code.KV_JSQ, False, 200.0),
    Scheduler("kv_token_jsq", Code.KV_TOKEN_JSQ, False, 2000.0),
    Scheduler("overlap_kv_jsq", Code.KV_JSQ, False, 2000.0),
    Scheduler("overlap_kv_token_jsq", Code.KV_TOKEN_JSQ, False, 2000.0),
    Scheduler("mixed_pool", Code.MIXED_POOL, False, 200.0),
)}
CO_LOCATED = tuple(name for name, s in SCHEDULERS.items() if s.co_located)
