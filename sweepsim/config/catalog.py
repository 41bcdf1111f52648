"""Hardware and model tables (TOML under configs/hardware and configs/models)."""
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed

HARDWARE_DIR = PROJECT_ROOT / "configs" / "hardware"
MODELS_FILE = PROJECT_ROOT / "configs" / "models" / "models.toml"


@dataclass(frozen=True)
class Processor:
    name: str
    memory_bytes: int
    power_idle_w: float
    power_prompt_w: float
    power_token_w: float


@dataclass(frozen=True)
class Sku:
    """A server: ``num_processors`` GPUs of one processor type."""
    name: str
    processor: Processor
    num_processors: int
    tdp_w: float
    server_base_power_w: float
    cost_per_hour: float
    power_weight: float
    nic_bandwidth_gbps: float
    nvlink_bandwidth_gbs: float


@dataclass(frozen=True)
class Model:
    """A model architecture with fp16 weights; KV bytes per token as SplitwiseSim (no GQA unless kv_heads)."""
    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    dtype_bytes: int
    weight_bytes: int
    kv_heads: int | None = None

    @property
    def kv_bytes_per_token(self) -> int:
        if self.kv_heads is None:
            return 2 * self.num_layers * self.hidden_size * self.dtype_bytes
        return 2 * self.num_layers * self.hidden_size * self.kv_heads // self.num_heads * self.dtype_bytes


def _load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=None)
def processors() -> dict[str, Processor]:
    path = HARDWARE_DIR / "processors.toml"
    out = {}
    for name, d in _load_toml(path).items():
        out[name] = Processor(name, int(d["memory_bytes"]), float(d["power_idle_w"]),
                              float(d["power_prompt_w"]), float(d["power_token_w"]))
    return out


@lru_cache(maxsize=None)
def skus() -> dict[str, Sku]:
    path = HARDWARE_DIR / "skus.toml"
    procs = processors()
    out = {}
    for name, d in _load_toml(path).items():
        if d["processor"] not in procs:
            raise InputError(path, f"{name}.processor", f"unknown processor {d['processor']!r}; {allowed(procs)}")
        out[name] = Sku(name, procs[d["processor"]], int(d["num_processors"]), float(d["tdp_w"]),
                        float(d["server_base_power_w"]), float(d["cost_per_hour"]), float(d["power_weight"]),
                        float(d["nic_bandwidth_gbps"]), float(d["nvlink_bandwidth_gbs"]))
    return out


@lru_cache(maxsize=None)
def models() -> dict[str, Model]:
    out = {}
    for name, d in _load_toml(MODELS_FILE).items():
        out[name] = Model(name, int(d["num_layers"]), int(d["hidden_size"]), int(d["num_heads"]),
                          int(d["dtype_bytes"]), int(d["weight_bytes"]), d.get("kv_heads"))
    return out


def get_sku(name, source=None, field="cluster"):
    table = skus()
    if not isinstance(name, str) or name not in table:
        raise InputError(source, field, f"unknown SKU {name!r}; {allowed(table)}")
    return table[name]


def get_model(name, source=None, field="model"):
    table = models()
    if not isinstance(name, str) or name not in table:
        raise InputError(source, field, f"unknown model {name!r}; {allowed(table)}")
    return table[name]
