#!/usr/bin/env python3
"""A small, readable float32 numpy LLaMA forward pass: the independent reference for fkv's golden logits.

Reads either a GGUF file (through the `gguf` package, every tensor dequantized to float32 with
gguf.quants.dequantize) or a llama2.c checkpoint (.bin), and returns teacher-forced logits for every
position of a token sequence.

RoPE convention: GGUF llama files store the Q/K projection rows permuted (by llama.cpp's converter) so that
RoPE rotates ADJACENT pairs (2i, 2i+1) of each head; llama2.c checkpoints use the same pairing. We use the
weights exactly as stored and rotate adjacent pairs. (Hugging Face transformers un-permutes Q/K when loading
a GGUF and rotates (i, i + d/2) instead; the two are the same function.)

Usage as a script:  numpy_llama.py MODEL.gguf|MODEL.bin TOKEN_ID [TOKEN_ID ...]   (prints the argmax per position)
"""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Layer:
    attn_norm: np.ndarray  # [dim]
    wq: np.ndarray  # [n_heads * head_dim, dim]  (row-major [out, in])
    wk: np.ndarray  # [n_kv_heads * head_dim, dim]
    wv: np.ndarray  # [n_kv_heads * head_dim, dim]
    wo: np.ndarray  # [dim, n_heads * head_dim]
    ffn_norm: np.ndarray  # [dim]
    w_gate: np.ndarray  # [hidden, dim]  (llama2.c w1)
    w_down: np.ndarray  # [dim, hidden]  (llama2.c w2)
    w_up: np.ndarray  # [hidden, dim]  (llama2.c w3)
    bq: np.ndarray | None = None  # optional biases (Qwen2-style); absent for LLaMA
    bk: np.ndarray | None = None
    bv: np.ndarray | None = None


@dataclass
class Model:
    n_heads: int
    n_kv_heads: int
    head_dim: int
    n_rot: int  # number of leading dims of each head that RoPE rotates (== head_dim for LLaMA)
    rms_eps: float
    rope_theta: float
    tok_embd: np.ndarray  # [vocab, dim]
    layers: list[Layer]
    out_norm: np.ndarray  # [dim]
    output: np.ndarray  # [vocab, dim]; the same array as tok_embd when tied
    rope_freq_factors: np.ndarray | None = None  # llama3-style scaling: divides each pair's frequency
    rope_linear_scale: float = 1.0  # linear position interpolation: positions are divided by this
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- loaders


def _field_value(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    if hasattr(f, "contents"):
        return f.contents()
    v = f.parts[f.data[0]]  # older gguf versions
    return v.tobytes().decode() if v.dtype == np.uint8 else v.tolist()[0]


def load_gguf(path: str) -> Model:
    import gguf

    reader = gguf.GGUFReader(path)
    arch = _field_value(reader, "general.architecture")
    kv = lambda name, default=None: _field_value(reader, f"{arch}.{name}", default)

    def tensor(name, required=True):
        for t in reader.tensors:
            if t.name == name:
                a = gguf.quants.dequantize(t.data, t.tensor_type)
                # numpy shape is GGUF's ne reversed: [out, in] for matrices
                return np.ascontiguousarray(a, dtype=np.float32).reshape(tuple(int(d) for d in reversed(t.shape)))
        if required:
            raise KeyError(f"{path}: tensor {name} missing")
        return None

    dim = int(kv("embedding_length"))
    n_heads = int(kv("attention.head_count"))
    n_kv_heads = int(kv("attention.head_count_kv", n_heads))
    head_dim = int(kv("attention.key_length", dim // n_heads))
    n_rot = int(kv("rope.dimension_count", head_dim))
    layers = []
    for i in range(int(kv("block_count"))):
        p = f"blk.{i}."
        layers.append(
            Layer(
                attn_norm=tensor(p + "attn_norm.weight"),
                wq=tensor(p + "attn_q.weight"),
                wk=tensor(p + "attn_k.weight"),
                wv=tensor(p + "attn_v.weight"),
                wo=tensor(p + "attn_output.weight"),
                ffn_norm=tensor(p + "ffn_norm.weight"),
                w_gate=tensor(p + "ffn_gate.weight"),
                w_down=tensor(p + "ffn_down.weight"),
                w_up=tensor(p + "ffn_up.weight"),
                bq=tensor(p + "attn_q.bias", False),
                bk=tensor(p + "attn_k.bias", False),
                bv=tensor(p + "attn_v.bias", False),
            )
        )
    tok_embd = tensor("token_embd.weight")
    output = tensor("output.weight", required=False)
    scaling_type = kv("rope.scaling.type")
    linear_scale = float(kv("rope.scaling.factor", 1.0)) if scaling_type == "linear" else 1.0
    return Model(
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        n_rot=n_rot,
        rms_eps=float(kv("attention.layer_norm_rms_epsilon")),
        rope_theta=float(kv("rope.freq_base", 10000.0)),
        tok_embd=tok_embd,
        layers=layers,
        out_norm=tensor("output_norm.weight"),
        output=tok_embd if output is None else output,
        # llama3 rope scaling: the converter stores per-pair frequency divisors as rope_freqs.weight
        rope_freq_factors=tensor("rope_freqs.weight", required=False),
        rope_linear_scale=linear_scale,
        meta={"arch": arch, "tied_output": output is None},
    )


def load_llama2c(path: str) -> Model:
    """llama2.c checkpoint, version 0 (see ../shared/models/README.md)."""
    with open(path, "rb") as f:
        dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = struct.unpack("<7i", f.read(28))
        data = np.frombuffer(f.read(), dtype="<f4")
    shared = vocab > 0
    vocab = abs(vocab)
    head_dim = dim // n_heads
    kv_dim = n_kv_heads * head_dim
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > data.size:
            raise ValueError(f"{path}: truncated checkpoint")
        a = data[off : off + n].reshape(shape).astype(np.float32)
        off += n
        return a

    tok_embd = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    take(seq_len, head_dim // 2)  # freq_cis_real (unused: we compute RoPE)
    take(seq_len, head_dim // 2)  # freq_cis_imag
    output = tok_embd if shared else take(vocab, dim)
    layers = [
        Layer(rms_att[i], wq[i], wk[i], wv[i], wo[i], rms_ffn[i], w1[i], w2[i], w3[i]) for i in range(n_layers)
    ]
    return Model(
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        n_rot=head_dim,
        rms_eps=1e-5,
        rope_theta=10000.0,
        tok_embd=tok_embd,
        layers=layers,
        out_norm=rms_final,
        output=output,
        meta={"arch": "llama2c", "tied_output": shared, "seq_len": seq_len},
    )


def load(path: str) -> Model:
    with open(path, "rb") as f:
        magic = f.read(4)
    return load_gguf(path) if magic == b"GGUF" else load_llama2c(path)


# ----------------------------------------------------------------------------------------------- forward


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(ms + np.float32(eps))) * w


def rope_tables(m: Model, n_pos: int) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin [n_pos, n_rot/2]; pair i turns by pos * theta^(-2i/n_rot) (angles in float64, then cast)."""
    i = np.arange(m.n_rot // 2, dtype=np.float64)
    freq = m.rope_theta ** (-2.0 * i / m.n_rot)
    if m.rope_freq_factors is not None:
        freq = freq / m.rope_freq_factors.astype(np.float64)[: m.n_rot // 2]
    pos = np.arange(n_pos, dtype=np.float64) / m.rope_linear_scale
    ang = np.outer(pos, freq)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, n_rot: int) -> np.ndarray:
    """x [n, heads, head_dim]; rotates adjacent pairs (2i, 2i+1) of the first n_rot dims."""
    out = x.copy()
    a = x[..., 0:n_rot:2]
    b = x[..., 1:n_rot:2]
    c = cos[:, None, :]
    s = sin[:, None, :]
    out[..., 0:n_rot:2] = a * c - b * s
    out[..., 1:n_rot:2] = a * s + b * c
    return out


def forward(m: Model, tokens) -> np.ndarray:
    """Teacher-forced logits [len(tokens), vocab] (float32), causal attention over all previous positions."""
    tokens = np.asarray(tokens, dtype=np.int64)
    n = len(tokens)
    hd, nh, nkv = m.head_dim, m.n_heads, m.n_kv_heads
    group = nh // nkv
    cos, sin = rope_tables(m, n)
    mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), k=1)
    scale = np.float32(1.0 / np.sqrt(hd))

    x = m.tok_embd[tokens].astype(np.float32)  # [n, dim]
    for L in m.layers:
        h = rms_norm(x, L.attn_norm, m.rms_eps)
        q = h @ L.wq.T
        k = h @ L.wk.T
        v = h @ L.wv.T
        if L.bq is not None:
            q, k, v = q + L.bq, k + L.bk, v + L.bv
        q = apply_rope(q.reshape(n, nh, hd), cos, sin, m.n_rot)
        k = apply_rope(k.reshape(n, nkv, hd), cos, sin, m.n_rot)
        v = v.reshape(n, nkv, hd)
        att_out = np.empty((n, nh, hd), dtype=np.float32)
        for hq in range(nh):
            hk = hq // group  # GQA: consecutive query heads share a KV head
            s = (q[:, hq, :] @ k[:, hk, :].T) * scale + mask  # [n, n]
            s = s - s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            att_out[:, hq, :] = p @ v[:, hk, :]
        x = x + att_out.reshape(n, nh * hd) @ L.wo.T
        h = rms_norm(x, L.ffn_norm, m.rms_eps)
        g = h @ L.w_gate.T
        u = h @ L.w_up.T
        with np.errstate(over="ignore"):  # exp(-g) overflows to inf for very negative g; silu -> -0, as it should
            silu = g / (np.float32(1.0) + np.exp(-g))
        x = x + (silu * u) @ L.w_down.T
    x = rms_norm(x, m.out_norm, m.rms_eps)
    return (x @ m.output.T).astype(np.float32)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    m = load(argv[1])
    logits = forward(m, [int(t) for t in argv[2:]])
    print(" ".join(str(int(i)) for i in logits.argmax(axis=-1)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
