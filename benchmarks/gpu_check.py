"""CPU/GPU agreement of the exact engine, for a session lent a GPU (the device tool), in one short run.

    python benchmarks/gpu_check.py TREE [--archive A.cseed ...] [--keep DIR]

1. The engine's logits for the same tokens on the CPU and on the GPU: the same bits (SHA-256).
2. TREE packed --exact on the GPU decodes on the CPU, and packed on the CPU decodes on the GPU,
   byte for byte, with the two archives identical.
3. Each --archive (TREE packed on another machine) unpacks to TREE on this machine's GPU and CPU.
--keep DIR writes the GPU-packed archive there, to unpack on another machine.
Prints one line per check and exits 1 if any differs. Benchmarks are not tests: CI has no GPU.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import codeseed  # noqa: E402
from codeseed.model import CodeModel  # noqa: E402


def digest(model: CodeModel, ids: list[int]) -> str:
    eng = model.engine
    tok = torch.tensor([ids], device=eng.device)
    pos = torch.arange(len(ids), device=eng.device)[None]
    acc, scale = eng.forward(tok, pos, torch.zeros_like(pos), eng.new_cache(1, model.context))
    return hashlib.sha256(eng.logits(acc, scale).cpu().numpy().tobytes()).hexdigest()


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tree", type=Path)
    ap.add_argument("--archive", type=Path, action="append", default=[], help="TREE packed elsewhere")
    ap.add_argument("--keep", type=Path, help="write the GPU-packed archive into this folder")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    cpu, gpu = CodeModel(device="cpu"), CodeModel(device="cuda")
    ids = cpu.encode((Path(codeseed.__file__).parent / "engine.py").read_text())[:600]
    ok = digest(cpu, ids) == digest(gpu, ids)
    print(f"logits cpu == cuda: {ok}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        name = {id(gpu): "cuda", id(cpu): "cpu"}

        def unpacks(arc: Path, unpacker: CodeModel) -> tuple[bool, float]:
            """Whether arc unpacks to TREE on unpacker's device, and the seconds it took."""
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            codeseed.unpack(arc, out, model=unpacker)
            return tree(out) == tree(args.tree), time.perf_counter() - t

        for packer, unpacker in ((gpu, cpu), (cpu, gpu)):
            arc = work / f"{name[id(packer)]}.cseed"
            t = time.perf_counter()
            codeseed.pack(args.tree, arc, mode="exact", model=packer, no_ignore=True, force=True)
            t_pack = time.perf_counter() - t
            same, t_unpack = unpacks(arc, unpacker)
            ok &= same
            print(f"packed on {name[id(packer)]} ({t_pack:.1f} s), unpacked on {name[id(unpacker)]} "
                  f"({t_unpack:.1f} s): {'identical' if same else 'DIFFERS'}")
        same = (work / "cuda.cseed").read_bytes() == (work / "cpu.cseed").read_bytes()
        ok &= same
        print(f"archive packed on cuda == archive packed on cpu: {same}")
        for arc in args.archive:
            same = arc.read_bytes() == (work / "cpu.cseed").read_bytes()
            print(f"{arc.name} == archive packed on this machine: {same}")
            for unpacker in (gpu, cpu):
                same, t_unpack = unpacks(arc, unpacker)
                ok &= same
                print(f"{arc.name} unpacked on {name[id(unpacker)]} ({t_unpack:.1f} s): "
                      f"{'identical' if same else 'DIFFERS'}")
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(work / "cuda.cseed", args.keep / "packed-on-cuda.cseed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
