#!/usr/bin/python3
"""Writes OUT/pytorch_model.bin (torch.save of a state dict with a transposed view, a slice with
a storage offset, fp16 and bf16 tensors, a Parameter) and OUT/reference.safetensors holding the
same values as contiguous float32 (raw safetensors: 8-byte header length + JSON + data).
Exits 77 when torch is missing."""
import os
import sys

try:
    import torch
    from safetensors_np import write_safetensors
except ImportError:
    print("torch is not installed", file=sys.stderr)
    sys.exit(77)

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
g = torch.Generator().manual_seed(0)
base = torch.randn(6, 5, generator=g)
big = torch.randn(40, generator=g)
sd = {
    "contiguous": torch.randn(3, 4, generator=g),
    "transposed": base.t(),                     # stride (1, 5)
    "slice_offset": big[7:19].view(3, 4),       # storage offset 7
    "strided_rows": base[1::2, ::2],            # offset 5, stride (10, 2)
    "half": torch.randn(2, 3, 4, generator=g).half(),
    "bf16_transposed": torch.randn(4, 3, generator=g).bfloat16().t(),
    "param": torch.nn.Parameter(torch.randn(5, generator=g)),
    "scalar": torch.tensor(2.5),
}
torch.save(sd, os.path.join(out, "pytorch_model.bin"))

write_safetensors(os.path.join(out, "reference.safetensors"),
                  {name: t.detach().float().contiguous().numpy() for name, t in sd.items()})
