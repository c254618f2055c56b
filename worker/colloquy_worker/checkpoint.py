"""
Hugging Face checkpoints: config.json (transformers 4 and 5 keys, read as src/formats/hf-config.ts reads them) and
model.safetensors or the shards of model.safetensors.index.json, read directly: an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}}, then raw little-endian data (torch.frombuffer over a
private memory map; no safetensors package).
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass, field

import torch

from .errors import UserError

# safetensors dtype → torch dtype (the ones a LLaMA checkpoint holds)
ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
             "I32": torch.int32, "I64": torch.int64}
LINEAR_KINDS = ("q", "k", "v", "o", "gate", "up", "down")
HF_LINEAR_PATH = {
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
    "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj",
}


@dataclass
class ModelConfig:
    dim: int  # C
    n_layers: int  # L
    n_heads: int  # NH
    n_kv_heads: int  # KVH
    head_dim: int  # HS
    hidden_dim: int  # F
    vocab_size: int  # V
    max_seq_len: int
    norm_eps: float
    rope_theta: float
    rope_scaling: dict | None  # {"type": "linear", "factor"} or {"type": "llama3", factor, low_freq_factor, ...}
    tied_embeddings: bool
    bos_id: int | None = None
    eos_ids: list = field(default_factory=list)

    def linear_shape(self, kind: str) -> tuple[int, int]:
        """(out, in) of a decoder layer's linear `kind`."""
        q, kv, c, f = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim, self.dim, self.hidden_dim
        return {"q": (q, c), "k": (kv, c), "v": (kv, c), "o": (c, q), "gate": (f, c), "up": (f, c), "down": (c, f)}[kind]

    def wire(self) -> dict:
        """The `config` of the open reply."""
        return {"dim": self.dim, "n_layers": self.n_layers, "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads,
                "head_dim": self.head_dim, "hidden_dim": self.hidden_dim, "vocab_size": self.vocab_size,
                "max_seq_len": self.max_seq_len, "tied_embeddings": self.tied_embeddings}


def parse_config(j, file: str) -> ModelConfig:
    """config.json → ModelConfig; anything that would change the computation and is unsupported is an error."""
    if not isinstance(j, dict):
        raise UserError("E_BAD_CONFIG", f"{file}: not a JSON object")

    def fail(what):
        raise UserError("E_BAD_CONFIG", f"{file}: {what}")

    def unsupported(what):
        raise UserError("E_UNSUPPORTED", f"{file}: {what} (colloquy runs LlamaForCausalLM-style decoders)")

    archs = j.get("architectures") if isinstance(j.get("architectures"), list) else []
    model_type = j.get("model_type") if isinstance(j.get("model_type"), str) else ""
    if model_type != "llama":
        unsupported(f'model_type "{model_type or "(missing)"}" is not supported')
    if archs and "LlamaForCausalLM" not in archs:
        unsupported(f"architecture {', '.join(map(str, archs))} is not supported")

    def pos_int(key, fallback=None):
        v = j.get(key)
        v = fallback if v is None else v
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            fail(f"{key} must be a positive integer, found {json.dumps(j.get(key))}")
        return v

    def pos_num(v, key, fallback):
        if v is None:
            return fallback
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0 < v < float("inf")):
            fail(f"{key} must be a positive number, found {json.dumps(v)}")
        return float(v)

    dim = pos_int("hidden_size")
    n_heads = pos_int("num_attention_heads")
    n_kv = pos_int("num_key_value_heads", n_heads)
    if j.get("head_dim") is None:
        if dim % n_heads:
            fail(f"hidden_size {dim} is not divisible by num_attention_heads {n_heads}; set head_dim")
        head_dim = dim // n_heads
    else:
        head_dim = pos_int("head_dim")
    if head_dim % 2:
        fail(f"head_dim {head_dim} must be even for rotary embedding")
    if n_heads % n_kv:
        fail(f"num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}")
    act = j.get("hidden_act", "silu")
    if act != "silu":
        unsupported(f'hidden_act "{act}" (only silu)')
    if j.get("attention_bias") is True:
        unsupported("attention_bias=true (biases in q/k/v/o)")
    if j.get("mlp_bias") is True:
        unsupported("mlp_bias=true (biases in the MLP)")
    if j.get("sliding_window") is not None and j.get("use_sliding_window") is not False:
        unsupported("sliding-window attention")

    # rope: transformers 5 keeps theta and scaling together in rope_parameters; 4 has rope_theta + rope_scaling
    rp = j.get("rope_parameters") if isinstance(j.get("rope_parameters"), dict) else None
    theta_raw = rp.get("rope_theta") if rp and rp.get("rope_theta") is not None else j.get("rope_theta")
    theta = pos_num(theta_raw, "rope_theta", 10000.0)
    scaling_raw = j.get("rope_scaling") if j.get("rope_scaling") is not None else rp
    eos = j.get("eos_token_id")
    eos_ids = list(eos) if isinstance(eos, list) else [eos] if isinstance(eos, int) else []
    bos = j.get("bos_token_id")
    return ModelConfig(
        dim=dim, n_layers=pos_int("num_hidden_layers"), n_heads=n_heads, n_kv_heads=n_kv, head_dim=head_dim,
        hidden_dim=pos_int("intermediate_size"), vocab_size=pos_int("vocab_size"),
        max_seq_len=pos_int("max_position_embeddings", 2048), norm_eps=pos_num(j.get("rms_norm_eps"), "rms_norm_eps", 1e-6),
        rope_theta=theta, rope_scaling=_rope_scaling(scaling_raw, file), tied_embeddings=j.get("tie_word_embeddings") is True,
        bos_id=bos if isinstance(bos, int) else None, eos_ids=eos_ids,
    )


def _rope_scaling(s, file: str) -> dict | None:
    if not isinstance(s, dict):
        return None
    kind = str(s.get("rope_type", s.get("type", "default")))

    def need(key):
        v = s.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v != v or v in (float("inf"), float("-inf")):
            raise UserError("E_BAD_CONFIG", f'{file}: rope scaling "{kind}" needs a number {key}, found {json.dumps(v)}')
        return float(v)

    if kind == "default":
        return None
    if kind == "linear":
        return {"type": "linear", "factor": need("factor")}
    if kind == "llama3":
        return {"type": "llama3", "factor": need("factor"), "low_freq_factor": need("low_freq_factor"),
                "high_freq_factor": need("high_freq_factor"),
                "original_max_position_embeddings": need("original_max_position_embeddings")}
    raise UserError("E_UNSUPPORTED", f'{file}: rope scaling type "{kind}" is not supported (supported: default, linear, llama3)')


def read_config(folder: str) -> ModelConfig:
    file = os.path.join(folder, "config.json")
    return parse_config(_read_json(file, "model config"), file)


def base_tensor_names(c: ModelConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, shape) of every base tensor, in checkpoint order; lm_head only when untied."""
    out = [("model.embed_tokens.weight", (c.vocab_size, c.dim))]
    for l in range(c.n_layers):
        out.append((f"model.layers.{l}.input_layernorm.weight", (c.dim,)))
        out += [(f"model.layers.{l}.{HF_LINEAR_PATH[k]}.weight", c.linear_shape(k)) for k in LINEAR_KINDS]
        out.append((f"model.layers.{l}.post_attention_layernorm.weight", (c.dim,)))
    out.append(("model.norm.weight", (c.dim,)))
    if not c.tied_embeddings:
        out.append(("lm_head.weight", (c.vocab_size, c.dim)))
    return out


class SafetensorsFile:
    """One .safetensors file, memory-mapped; `get` returns a tensor viewing the map (copy it before close)."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._f = open(path, "rb")
        except OSError as e:
            raise UserError("E_NOT_FOUND", f"cannot open {path}: {e.strerror}") from None
        size = os.fstat(self._f.fileno()).st_size
        if size < 8:
            raise UserError("E_BAD_CHECKPOINT", f"{path}: {size} bytes is too short for a safetensors file")
        (n,) = struct.unpack("<Q", self._f.read(8))
        if n > size - 8:
            raise UserError("E_BAD_CHECKPOINT", f"{path}: header length {n} exceeds the file ({size} bytes)")
        try:
            header = json.loads(self._f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UserError("E_BAD_CHECKPOINT", f"{path}: the header is not JSON ({e})") from None
        header.pop("__metadata__", None)
        self.tensors: dict = header
        self._data_start = 8 + n
        self._size = size
        # ACCESS_COPY: a private, writable mapping (torch.frombuffer wants writable memory); nothing is written back
        self._map = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_COPY) if size > 0 else None

    def get(self, name: str) -> torch.Tensor:
        info = self.tensors[name]
        dtype = ST_DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise UserError("E_UNSUPPORTED", f"{self.path}: tensor {name} has dtype {info.get('dtype')} (supported: F32, F16, BF16, F64, I32, I64)")
        shape = [int(d) for d in info["shape"]]
        begin, end = (int(x) for x in info["data_offsets"])
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * torch.empty((), dtype=dtype).element_size()
        if end - begin != nbytes or self._data_start + end > self._size:
            raise UserError("E_BAD_CHECKPOINT", f"{self.path}: tensor {name} ({info['dtype']} {shape}) has data_offsets [{begin}, {end}] "
                            f"that do not fit its size ({nbytes} bytes) or the file")
        if numel == 0:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(self._map, dtype=dtype, count=numel, offset=self._data_start + begin).reshape(shape)

    def close(self):
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a view is still alive; the map goes with it
                pass
        self._f.close()


def weight_files(folder: str) -> dict[str, str]:
    """tensor name → the file holding it (model.safetensors, or the shards of model.safetensors.index.json)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(index):
        j = _read_json(index, "sharded checkpoint index")
        wm = j.get("weight_map") if isinstance(j, dict) else None
        if not isinstance(wm, dict):
            raise UserError("E_BAD_INDEX", f"{index}: no weight_map object (expected the layout transformers writes)")
        return {name: os.path.join(folder, shard) for name, shard in wm.items()}
    if os.path.exists(single):
        f = SafetensorsFile(single)
        names = list(f.tensors)
        f.close()
        return {n: single for n in names}
    hint = ("this checkpoint is in PyTorch's pickle format; save it with safe_serialization=True"
            if os.path.exists(os.path.join(folder, "pytorch_model.bin")) else "expected model.safetensors or model.safetensors.index.json")
    raise UserError("E_NOT_FOUND", f"no weights in {folder}: {hint}")


def load_weights(folder: str, c: ModelConfig, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every base tensor by HF name, on `device` in `dtype`, checked against the shapes `c` implies."""
    where = weight_files(folder)
    for name, file in where.items():
        if name.endswith(".bias"):
            raise UserError("E_UNSUPPORTED", f"{file}: tensor {name} is a bias; LLaMA-family layers have none")
    files: dict[str, SafetensorsFile] = {}
    out = {}
    try:
        for name, shape in base_tensor_names(c):
            file = where.get(name)
            if file is None:
                hint = " (set tie_word_embeddings=true in config.json if the head shares the embedding)" if name == "lm_head.weight" else ""
                raise UserError("E_MISSING_TENSOR", f"{folder}: tensor {name} is missing{hint}")
            f = files.get(file) or files.setdefault(file, SafetensorsFile(file))
            if name not in f.tensors:
                raise UserError("E_MISSING_TENSOR", f"{file}: tensor {name} is missing (the index names this file)")
            got = tuple(int(d) for d in f.tensors[name]["shape"])
            if got != shape:
                raise UserError("E_SHAPE", f"{file}: tensor {name} has shape {list(got)} but config.json implies {list(shape)}")
            view = f.get(name)
            if not view.dtype.is_floating_point:
                raise UserError("E_UNSUPPORTED", f"{file}: tensor {name} is {f.tensors[name]['dtype']}; weights must be F32, F16 or BF16")
            out[name] = view.to(device=device, dtype=dtype, copy=True)
            del view
    finally:
        for f in files.values():
            f.close()
    return out


def _read_json(file: str, what: str):
    try:
        with open(file, "rb") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        raise UserError("E_NOT_FOUND", f"{what} {file} does not exist") from None
    except OSError as e:
        raise UserError("E_NOT_FOUND", f"cannot read {what} {file}: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError("E_BAD_CONFIG", f"{what} {file} is not JSON: {e}") from None
