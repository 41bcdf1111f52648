"""Hardware and model tables (TOML under configs/hardware and configs/models)."""
import dataclasses
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
    peak_tflops: float | None = None    # dense FP16/BF16 tensor-core TFLOP/s (roofline model)
    hbm_gbs: float | None = None        # HBM bandwidth [GB/s]
    nvlink_gbs: float | None = None     # NVLink bandwidth per GPU [GB/s]

    @property
    def has_roofline_figures(self) -> bool:
        return None not in (self.peak_tflops, self.hbm_gbs, self.nvlink_gbs)


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
    """A model architecture (configs/models/models.toml); KV bytes per token as SplitwiseSim counts them unless
    ``kv_heads`` (grouped-query attention) or an explicit ``kv_bytes_per_token`` says otherwise."""
    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    dtype_bytes: int
    weight_bytes: int
    kv_heads: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    mlp: str = "gated"
    num_experts: int = 1
    experts_active: int = 1
    param_bytes: int = 2
    tied_embeddings: bool = False
    kv_bytes_override: int | None = None
    profiled_as: str | None = None      # the performance database's rows of this model are under that name

    @property
    def kv_bytes_per_token(self) -> int:
        if self.kv_bytes_override is not None:
            return self.kv_bytes_override
        if self.kv_heads is None:
            return 2 * self.num_layers * self.hidden_size * self.dtype_bytes
        return 2 * self.num_layers * self.hidden_size * self.kv_heads // self.num_heads * self.dtype_bytes

    def layer_params(self, active: bool = True) -> tuple[float, float]:
        """(attention, MLP) parameters of one layer (the MLP of the experts used per token, or of all)."""
        h = self.hidden_size
        kv = h * (self.kv_heads or self.num_heads) / self.num_heads
        attention = 2 * h * h + 2 * h * kv
        mats = 3 if self.mlp == "gated" else 2
        experts = self.experts_active if active else self.num_experts
        return attention, mats * h * (self.intermediate_size or 4 * h) * experts

    def params(self, active: bool = True) -> float:
        """Parameters: layers plus embeddings (input and output unless tied)."""
        attention, mlp = self.layer_params(active)
        emb = (self.vocab_size or 0) * self.hidden_size * (1 if self.tied_embeddings else 2)
        return self.num_layers * (attention + mlp) + emb


MODEL_KEYS = ("num_layers", "hidden_size", "num_heads", "dtype_bytes", "weight_bytes", "kv_heads",
              "intermediate_size", "vocab_size", "mlp", "num_experts", "experts_active", "param_bytes",
              "tied_embeddings", "kv_bytes_per_token", "profiled_as")


def _load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


@lru_cache(maxsize=None)
def processors() -> dict[str, Processor]:
    path = HARDWARE_DIR / "processors.toml"
    out = {}
    for name, d in _load_toml(path).items():
        opt = {k: float(d[k]) for k in ("peak_tflops", "hbm_gbs", "nvlink_gbs") if k in d}
        out[name] = Processor(name, int(d["memory_bytes"]), float(d["power_idle_w"]),
                              float(d["power_prompt_w"]), float(d["power_token_w"]), **opt)
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
        bad = sorted(set(d) - set(MODEL_KEYS))
        if bad:
            raise InputError(MODELS_FILE, f"{name}.{bad[0]}", f"unknown key; {allowed(MODEL_KEYS)}")
        if d.get("mlp", "gated") not in ("gated", "gelu"):
            raise InputError(MODELS_FILE, f"{name}.mlp", f"{d['mlp']!r}; allowed: gated, gelu")
        m = Model(name, int(d["num_layers"]), int(d["hidden_size"]), int(d["num_heads"]), int(d["dtype_bytes"]),
                  0, d.get("kv_heads"), d.get("intermediate_size"), d.get("vocab_size"), d.get("mlp", "gated"),
                  int(d.get("num_experts", 1)), int(d.get("experts_active", 1)), int(d.get("param_bytes", 2)),
                  bool(d.get("tied_embeddings", False)), d.get("kv_bytes_per_token"), d.get("profiled_as"))
        weights = int(d["weight_bytes"]) if "weight_bytes" in d else int(round(m.params(active=False) * m.param_bytes))
        out[name] = dataclasses.replace(m, weight_bytes=weights)
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
