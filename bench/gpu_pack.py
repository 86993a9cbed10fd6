"""Carry a trained model to the GPU machine inside the device tool's 64 MiB limit.

    here:   python -m bench.gpu_pack pack weights/default .gpu/model
    there:  python3 -m bench.gpu_pack unpack .gpu/model     (scripts/gpu-check.sh does this)

The fp32 MiniLM-L6 weights are 91 MB; ``pack`` stores them rounded to fp16 (45 MB) and
leaves out ``report.png``. ``unpack`` widens them back to fp32 and re-hashes the manifest's
file list, recording ``transport_rounding: fp16``: the model version changes, and the CPU and
CUDA comparisons on that machine both use the rounded weights. The served GPU precision, bf16,
rounds the weights further than fp16 does.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from spamq.models.manifest import MANIFEST, read_manifest, sha256_file

WEIGHTS = "model.safetensors"
LEFT_OUT = ("report.png",)


def pack(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and path.name not in (WEIGHTS, *LEFT_OUT):
            shutil.copy2(path, dst / path.name)
    tensors = load_file(src / WEIGHTS)
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v
               for k, v in tensors.items()}, dst / WEIGHTS, metadata={"format": "pt"})


def unpack(model_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(model_dir / WEIGHTS)
    save_file({k: v.to(torch.float32) if v.is_floating_point() else v
               for k, v in tensors.items()}, model_dir / WEIGHTS, metadata={"format": "pt"})
    manifest = read_manifest(model_dir)
    manifest["files"] = {name: sha256_file(model_dir / name)
                         for name in manifest["files"] if (model_dir / name).is_file()}
    manifest["transport_rounding"] = "fp16"
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    u = sub.add_parser("unpack")
    u.add_argument("model_dir", type=Path)
    args = parser.parse_args()
    if args.cmd == "pack":
        pack(args.src, args.dst)
    else:
        unpack(args.model_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
