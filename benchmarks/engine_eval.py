"""What the exact engine costs and gains in bits/byte: the model alone on held-out Python, three ways.

    python benchmarks/engine_eval.py ../shared/eval-public/sdist [--model DIR] [--json OUT]

1. float32, transformers, 256-token windows overlapping by half (the model alone as formats 1-2
   scored and coded it: codeseed.legacy.FloatModel.token_bits);
2. float64, a plain reimplementation, the engine's context policy (each token sees the 256 before
   it, sliding): the policy without quantization;
3. the exact engine (engine.py: int8 weights and activations, integer tables): codeseed.model.
2 against 1 is the context policy; 3 against 2 is what exact integer arithmetic costs.
Every .py file of every sdist; total bits / total bytes. Benchmarks are not tests.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.model_eval import py_files  # noqa: E402
from codeseed.legacy import FloatModel  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402


@torch.no_grad()
def sliding_bits_float64(hf, ids: list[int], window: int, block: int = 512) -> float:
    """Bits of ids[1:] given the preceding tokens, each position seeing the `window` positions up to
    itself (rotary positions absolute), in float64 through the transformers model's own layers."""
    m = hf.model
    h = m.embed_tokens(torch.tensor([ids]))
    pos = torch.arange(len(ids))[None]
    cos, sin = m.rotary_emb(h, pos)
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    for layer in m.layers:
        att = layer.self_attn
        x = layer.input_layernorm(h)
        nh, dh = hf.config.num_attention_heads, att.head_dim
        q = att.q_proj(x).view(1, -1, nh, dh).transpose(1, 2)
        k = att.k_proj(x).view(1, -1, hf.config.num_key_value_heads, dh).transpose(1, 2)
        v = att.v_proj(x).view(1, -1, hf.config.num_key_value_heads, dh).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        outs = []
        for a in range(0, len(ids), block):
            b = min(len(ids), a + block)
            k0 = max(0, a - window + 1)
            s = q[:, :, a:b] @ k[:, :, k0:b].transpose(-1, -2) / math.sqrt(dh)
            qi = torch.arange(a, b)[:, None]
            kj = torch.arange(k0, b)[None, :]
            s = s.masked_fill(~((kj <= qi) & (kj > qi - window)), float("-inf"))
            outs.append(torch.softmax(s, -1) @ v[:, :, k0:b])
        o = torch.cat(outs, dim=2).transpose(1, 2).reshape(1, len(ids), -1)
        h = h + att.o_proj(o)
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    logp = torch.log_softmax(hf.lm_head(m.norm(h))[0], -1)
    return float(-logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].sum() / math.log(2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sdists", type=Path)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    files = py_files(args.sdists)
    nbytes = sum(len(t.encode()) for t in files.values())
    exact = CodeModel(args.model)
    old = FloatModel(exact.path)
    from transformers import AutoModelForCausalLM
    hf64 = AutoModelForCausalLM.from_pretrained(exact.path, local_files_only=True, dtype=torch.float64).eval()
    result = {"model": exact.id.to_dict(), "py_files": len(files), "py_bytes": nbytes, "window": exact.context}
    for name, fn in (("float32_rebuild_at_half", lambda t: float(old.token_bits(old.encode(t)).sum())),
                     ("float64_sliding", lambda t: sliding_bits_float64(hf64, [exact.bos] + exact.encode(t),
                                                                         exact.context)),
                     ("exact_engine_sliding", lambda t: float(exact.token_bits(exact.encode(t)).sum()))):
        t0 = time.perf_counter()
        bits = sum(fn(text) for text in files.values() if text)
        result[name] = {"bits_per_byte": bits / nbytes, "s": time.perf_counter() - t0}
        print(f"{name}: {bits / nbytes:.4f} bits/byte ({result[name]['s']:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
