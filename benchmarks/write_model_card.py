"""Write MODEL_CARD.md beside a model exported by `python -m codeseed.train --export`.

    python benchmarks/write_model_card.py codeseed/models/codeseed-small-2 EVAL.json [ENGINE.json]

EVAL.json comes from benchmarks/model_eval.py, ENGINE.json from benchmarks/engine_eval.py. Every
figure on the card is read from training.json (written at export) or those files: nothing here is
typed by hand.
"""
from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from codeseed.train import SPAN_KINDS, TrainConfig  # noqa: E402


def fim_recipe(cfg: dict) -> str:
    """The FIM part of a run's recipe; runs from before a setting existed used its default."""
    c = {**asdict(TrainConfig()), **cfg}
    return (f"{c['fim_rate']:.0%} FIM rows: {c['psm_rate']:.0%} PSM, the rest SPM; {c['span_rate']:.0%} split at an "
            f"AST span of a kind drawn first ({', '.join(SPAN_KINDS)}), the rest at random "
            f"characters; stop label weight {c['stop_weight']:g}")


def main() -> None:
    model_dir, eval_json = Path(sys.argv[1]), Path(sys.argv[2])
    meta = json.loads((model_dir / "training.json").read_text())
    ev = json.loads(eval_json.read_text())
    eng = json.loads(Path(sys.argv[3]).read_text()) if len(sys.argv) > 3 else None
    bpb_row = (f"| bits/byte, model alone, on the {ev['py_files']} `.py` files of eval-public ({ev['py_bytes']:,} bytes; "
               f"never trained on) | **{ev['bits_per_byte']:.3f}** |\n") if eng is None else ""
    engine_rows = "" if eng is None else (
        f"| bits/byte, model alone, on the {eng['py_files']} `.py` files of eval-public ({eng['py_bytes']:,} bytes; never "
        f"trained on), by the exact integer engine codeseed codes and fills with (int8 weights and activations, integer "
        f"tables; sliding {eng['window']}-token window) | **{eng['exact_engine_sliding']['bits_per_byte']:.4f}** |\n"
        f"| the same in float64 with the same window (no quantization) | {eng['float64_sliding']['bits_per_byte']:.4f} |\n"
        f"| the same in float32 through transformers, 256-token windows overlapping by half (formats 1-2) | "
        f"{eng['float32_rebuild_at_half']['bits_per_byte']:.4f} |\n")
    cfg, state, corpus = meta["config"], meta["state"], meta["corpus"]
    man = corpus["manifest"]
    conf = json.loads((model_dir / "config.json").read_text())
    weights = (model_dir / "model.safetensors").stat().st_size
    from safetensors.numpy import load_file
    n_params = sum(v.size for v in load_file(model_dir / "model.safetensors").values())
    curve = "\n".join(f"| {c['minutes']} | {c['step']} | {c['tokens'] / 1e6:.1f}M | {c['val_bpb']} |"
                      for c in state["curve"])
    fb, fd = ev.get("fim_body", {}), ev.get("fim_docstring", {})
    gb, gd = ev.get("fim_body_greedy", {}), ev.get("fim_docstring_greedy", {})
    defaults = asdict(TrainConfig())
    flags = " ".join(f"--{k.replace('_', '-')} {v if not isinstance(v, bool) else int(v)}"
                     for k, v in cfg.items() if k in defaults and defaults[k] != v)
    lineage, parent = [], state.get("parent")
    while parent:  # continuations: each run starts from its parent's weights
        lineage.append(f"{parent['run']} ({parent['steps']:,} steps, {parent['tokens'] / 1e6:.1f}M tokens, "
                       f"{parent['minutes']} min)")
        parent = parent.get("parent")
    init = f" --init-from {state['parent']['run']}" if state.get("parent") else ""
    on_gpu = "+cu" in meta.get("torch", "")  # trained on a lent GPU (benchmarks/gpu_session.sh)
    where = "a lent GPU" if on_gpu else "this machine's CPU"
    hardware = (f"one GPU, {cfg.get('workers', 0)} processes building batches" if on_gpu else
                f"{cfg['threads']} CPU thread{'s' if cfg['threads'] > 1 else ''} ({platform.machine()})")
    bundle = " --bundle corpus.tar.xz" if on_gpu else ""
    bundle_note = (f"\nOn the GPU machine, which cannot read this machine's site-packages, `--bundle` carries "
                   f"the corpus (written here by `python -m codeseed.train --out PREP{init} --write-bundle "
                   f"corpus.tar.xz`); benchmarks/gpu_session.sh is the whole session." if on_gpu else "")
    lineage_row = (f"| continued from | {' <- '.join(lineage)}: a fresh optimizer and schedule on its weights; "
                   f"the totals above are this run's alone |\n" if lineage else "")
    if state.get("parent") and Path(state["parent"]["run"]).name == model_dir.name:
        lineage_note_own = (f"\n{state['parent']['run']} in the lineage is this folder's earlier model, the export of "
                            "the first run, which was not shipped (benchmarks/RESULTS.md compares the two).")
    else:
        lineage_note_own = ""
    lineage_note = ("\nThe runs it continues were trained by earlier versions of codeseed's training code; "
                    "benchmarks/RESULTS.md gives each one's command and commit." if lineage else "")
    card = f"""# {model_dir.name}

A small fill-in-the-middle code model, trained by codeseed's own command on {where}.

| | |
|---|---|
| architecture | Llama (transformers `LlamaForCausalLM`), {conf['num_hidden_layers']} layers, d_model {conf['hidden_size']}, {conf['num_attention_heads']} heads, FFN {conf['intermediate_size']}, tied embeddings, RoPE |
| parameters | {n_params / 1e6:.2f}M ({weights / 1e6:.1f} MB float32 safetensors) |
| tokenizer | byte-level BPE, {conf['vocab_size']} tokens, StarCoder FIM sentinels (`<fim_prefix>`, `<fim_suffix>`, `<fim_middle>`), `<|endoftext|>` ends a middle |
| context | {cfg['seq_len']} tokens (codeseed's engine slides a window of {cfg['seq_len']} positions) |
| training | {state['step']:,} steps of {cfg['batch']} x {cfg['seq_len']} tokens = {state['tokens'] / 1e6:.1f}M tokens, {state['elapsed_s'] / 3600:.2f} h wall time, {hardware}, bf16 autocast + torch.compile, AdamW peak LR {cfg['peak_lr']}, cosine over the wall-clock budget; {fim_recipe(cfg)} |
{lineage_row}| corpus | CPython {'.'.join(platform.python_version_tuple()[:2])} standard library + site-packages `.py` files of the base interpreter, deduplicated by content, files over 1 MB and generated/minified files skipped: {man['files']:,} files, {man['bytes'] / 1e6:.1f} MB, content hash `{man['content_hash'][:16]}...` ({corpus['train_files']:,} train / {corpus['val_files']:,} validation files, {corpus['train_tokens'] / 1e6:.1f}M train tokens); skipped {man['skipped']} |
| never trained on | `../shared/eval-public` (tinydb, semver, schedule: excluded by name even if installed), codeseed's fixtures and tests |
| torch | {meta.get('torch', '?')} |

## Held-out results (`benchmarks/engine_eval.py`, `benchmarks/model_eval.py`; fills by the exact engine)

| measure | value |
|---|---|
{bpb_row}{engine_rows}| FIM on {fb.get('n', 0)} function bodies, as codeseed fills (greedy, no 6-token repeat): stops by itself / filled file parses | {100 * fb.get('stop_rate', 0):.0f}% / {100 * fb.get('parse_rate', 0):.0f}% |
| FIM on {fd.get('n', 0)} docstrings, as codeseed fills: stops by itself / filled file parses | {100 * fd.get('stop_rate', 0):.0f}% / {100 * fd.get('parse_rate', 0):.0f}% |
| the same by plain greedy decoding, stops by itself / parses: bodies; docstrings | {100 * gb.get('stop_rate', 0):.0f}% / {100 * gb.get('parse_rate', 0):.0f}%; {100 * gd.get('stop_rate', 0):.0f}% / {100 * gd.get('parse_rate', 0):.0f}% |
| median P(stop token) right after the true middle, teacher-forced: bodies / docstrings | {fb.get('p_stop_at_end_median', float('nan')):.3f} / {fd.get('p_stop_at_end_median', float('nan')):.3f} |

Model SHA-256 (codeseed's identity hash over weights, config and tokenizer): `{ev['model']['sha256']}`

## Training curve (validation bits/byte on the held-out 1% of the corpus)

| minutes | step | tokens | val bits/byte |
|---|---|---|---|
{curve}

Reproduce (resumable): `python -m codeseed.train --out RUN{bundle}{init} {flags}`, then
`python -m codeseed.train --out RUN --export codeseed/models/{model_dir.name}`.{bundle_note}{lineage_note_own}{lineage_note}
"""
    (model_dir / "MODEL_CARD.md").write_text(card)
    print(card)


if __name__ == "__main__":
    main()
