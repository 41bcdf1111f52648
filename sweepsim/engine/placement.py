"""Instance placement: servers of the cluster -> inference instances (start states).

Servers are numbered in cluster order (SKUs in the order the config lists them). Each instance spans
``tensor_parallel`` GPUs of one server, so a server holds 8 / TP instances; ids follow server order.
- ``orca`` / ``baseline``: every server runs untagged instances (prompt and decode of a request share one).
- ``splitwise`` homogeneous: the first ``prompt_servers`` servers run prompt instances, the next
  ``token_servers`` token instances, the rest stay idle. Heterogeneous: servers of SKU ``prompt_sku`` run
  prompt instances, of ``token_sku`` token instances (any other SKU is an error).
- ``splitwise_hhcap``: as heterogeneous splitwise with token instances on ``dgx-h100-pcap``.
"""
from dataclasses import dataclass

import numpy as np

from kernels.enums import Tag
from kernels.layout import INSTANCE_IN
from kernels.state_nb import Cluster
from sweepsim.config.run import RunConfig
from sweepsim.errors import InputError
from sweepsim.config.catalog import get_model, get_sku

TAG_NAMES = {Tag.NONE: "none", Tag.PROMPT: "prompt", Tag.TOKEN: "token"}


@dataclass(frozen=True)
class Placement:
    """Instances in id order, with everything the kernel and the outputs need."""
    server: np.ndarray       # server index (cluster order)
    sku: list[str]
    processor: list[str]
    tag: np.ndarray          # kernels.enums.Tag
    num_gpus: np.ndarray
    max_memory: np.ndarray   # bytes
    weights: np.ndarray      # bytes
    perf_row: np.ndarray     # row in the performance tables
    perf_keys: list[tuple[str, str, int]]
    n_servers: int
    server_sku: list[str]
    kv_per_token: np.ndarray = None   # bytes per KV token of each instance's model
    endpoint: np.ndarray = None       # topology endpoint of each instance (0 without a topology)

    @property
    def names(self):
        return [f"{p}_{i}" for i, p in enumerate(self.processor)]

    def server_bandwidths(self) -> tuple[np.ndarray, np.ndarray]:
        """Per server (cluster order): NIC bandwidth and NVLink bandwidth in bytes/s."""
        nic = np.array([get_sku(s).nic_bandwidth_gbps * 1e9 / 8 for s in self.server_sku], np.float64)
        nvlink = np.array([get_sku(s).nvlink_bandwidth_gbs * 1e9 for s in self.server_sku], np.float64)
        return nic, nvlink

    def kernel_cluster(self) -> Cluster:
        """The kernel's ``Cluster`` (rows named by ``kernels.layout.INSTANCE_IN`` / ``SERVER_IN``)."""
        rows = {"perf": self.perf_row}
        return Cluster(np.array([rows.get(k, getattr(self, k, None)) for k in INSTANCE_IN], np.int64),
                       np.array(self.server_bandwidths(), np.float64))


def _server_roles(cfg: RunConfig, servers: list[str]) -> list[int | None]:
    """Tag of each server's instances (None: no instance)."""
    if cfg.start_state in ("orca", "baseline"):
        return [Tag.NONE] * len(servers)
    if cfg.start_state == "splitwise" and cfg.split_type == "homogeneous":
        p, t = cfg.prompt_servers, cfg.token_servers
        return [Tag.PROMPT if k < p else Tag.TOKEN if k < p + t else None for k in range(len(servers))]
    prompt_sku = cfg.prompt_sku
    token_sku = "dgx-h100-pcap" if cfg.start_state == "splitwise_hhcap" else cfg.token_sku
    roles = []
    for s in servers:
        if s == prompt_sku:
            roles.append(Tag.PROMPT)
        elif s == token_sku:
            roles.append(Tag.TOKEN)
        else:
            raise InputError(cfg.source, "cluster", f"SKU {s!r} is neither the prompt SKU {prompt_sku!r} nor the "
                                                    f"token SKU {token_sku!r} of the heterogeneous split")
    return roles


def place_instances(cfg: RunConfig) -> Placement:
    if cfg.topology is not None:
        return place_topology(cfg)
    model = get_model(cfg.model, cfg.source)
    tp = cfg.instance.tensor_parallel
    servers = [sku for sku, count in cfg.cluster for _ in range(count)]
    roles = _server_roles(cfg, servers)
    rows = []
    keys: list[tuple[str, str, int]] = []
    for k, (sku_name, role) in enumerate(zip(servers, roles)):
        if role is None:
            continue
        sku = get_sku(sku_name, cfg.source)
        if sku.num_processors % tp:
            raise InputError(cfg.source, "instance.tensor_parallel",
                             f"{tp} does not divide the {sku.num_processors} GPUs of {sku_name}")
        key = (model.name, sku.processor.name, tp)
        if key not in keys:
            keys.append(key)
        max_mem = sku.processor.memory_bytes * tp
        if model.weight_bytes >= max_mem:
            raise InputError(cfg.source, "model", f"{model.name} weights ({model.weight_bytes} B) do not fit in "
                                                  f"{tp} x {sku.processor.name} ({max_mem} B)")
        for _ in range(sku.num_processors // tp):
            rows.append((k, sku_name, sku.processor.name, role, tp, max_mem, keys.index(key)))
    if not rows:
        raise InputError(cfg.source, "cluster", "the start state places no instance on this cluster")
    if cfg.start_state.startswith("splitwise"):
        tags = {r[3] for r in rows}
        for need, name in ((Tag.PROMPT, "prompt"), (Tag.TOKEN, "token")):
            if need not in tags:
                raise InputError(cfg.source, "cluster", f"the split places no {name} instance")
    col = list(zip(*rows))
    return Placement(np.array(col[0], np.int64), list(col[1]), list(col[2]), np.array(col[3], np.int64),
                     np.array(col[4], np.int64), np.array(col[5], np.int64),
                     np.full(len(rows), model.weight_bytes, np.int64), np.array(col[6], np.int64), keys,
                     len(servers), servers, np.full(len(rows), model.kv_bytes_per_token, np.int64),
                     np.zeros(len(rows), np.int64))


def place_topology(cfg: RunConfig) -> Placement:
    """A topology's instances, endpoint by endpoint (config order), each endpoint on servers of its own SKU
    (``tensor_parallel`` GPUs per instance, the last server possibly part-used); a group's instances are
    consecutive."""
    rows = []
    keys: list[tuple[str, str, int]] = []
    server_sku: list[str] = []
    for e_id, e in enumerate(cfg.topology.endpoints):
        model = get_model(e.model, cfg.source)
        sku = get_sku(e.sku, cfg.source)
        tp = e.tensor_parallel
        max_mem = sku.processor.memory_bytes * tp
        if model.weight_bytes >= max_mem:
            raise InputError(cfg.source, "endpoint", f"{model.name} weights ({model.weight_bytes} B) do not fit in "
                                                     f"{tp} x {sku.processor.name} ({max_mem} B) ({e.region}/{e.name})")
        key = (model.name, sku.processor.name, tp)
        if key not in keys:
            keys.append(key)
        per_server = sku.num_processors // tp
        for k in range(e.instances):
            if k % per_server == 0:
                server_sku.append(e.sku)
            rows.append((len(server_sku) - 1, e.sku, sku.processor.name, tp, max_mem, model.weight_bytes,
                         keys.index(key), model.kv_bytes_per_token, e_id))
    col = list(zip(*rows))
    n = len(rows)
    as_int = lambda j: np.array(col[j], np.int64)  # noqa: E731
    return Placement(as_int(0), list(col[1]), list(col[2]), np.full(n, Tag.NONE, np.int64), as_int(3), as_int(4),
                     as_int(5), as_int(6), keys, len(server_sku), server_sku, as_int(7), as_int(8))
