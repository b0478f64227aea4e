#!/usr/bin/env python3
"""Checks that a directory written by `convnext train` / `save_pretrained` is what transformers'
ConvNextForImageClassification (ConvNextV2ForImageClassification for model_type convnextv2)
.from_pretrained reads, using the PyTorch twin of
make_variants.py (transformers itself is not installable here):

  * config.json parses and names the architecture, labels and problem type;
  * model.safetensors holds exactly the state-dict keys the model reads (no missing, no unused
    key), with the shapes the config implies;
  * the twin's logits on the given pixel_values equal the logits `convnext forward` computed.

usage: check_saved_checkpoint.py DIR INPUT.safetensors OUTPUT.safetensors
Exits 77 (ctest: skipped) without torch.
"""
import json
import os
import sys

try:
    import numpy as np
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import make_variants as mv
    from safetensors_np import read_safetensors
except ImportError as exc:  # pragma: no cover
    print(f"check_saved_checkpoint: torch/numpy not importable ({exc})")
    sys.exit(77)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    d, inp, outp = sys.argv[1:]
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    v2 = cfg["model_type"] == "convnextv2"
    assert cfg["model_type"] in ("convnext", "convnextv2"), cfg["model_type"]
    arch = "ConvNextV2ForImageClassification" if v2 else "ConvNextForImageClassification"
    assert cfg["architectures"] == [arch], cfg["architectures"]
    assert not (v2 and "layer_scale_init_value" in cfg), "ConvNextV2Config has no layer_scale_init_value"
    assert len(cfg["id2label"]) == len(cfg["label2id"]) > 0
    weights = read_safetensors(os.path.join(d, "model.safetensors"))
    # Exactly the keys and shapes the config implies (transformers' state dict).
    want = {k: tuple(v.shape) for k, v in mv.draw_params(cfg, arch, np.random.default_rng(0)).items()}
    have = {k: tuple(v.shape) for k, v in weights.items()}
    if want != have:
        print(f"FAIL: keys/shapes differ from the config's: missing {sorted(set(want) - set(have))}, "
              f"unexpected {sorted(set(have) - set(want))}, "
              f"misshapen {sorted(k for k in set(want) & set(have) if want[k] != have[k])}")
        return 1
    P = mv.Params({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in weights.items()})
    px = torch.from_numpy(np.array(read_safetensors(inp)["pixel_values"], dtype=np.float32))
    with torch.no_grad():
        out = mv.classifier_forward(P, cfg, px)
    unused = P.unused()
    if unused:
        print(f"FAIL: keys the model never reads: {unused}")
        return 1
    ours = np.array(read_safetensors(outp)["logits"], dtype=np.float64)
    ref = out["logits"].double().numpy()
    err = float(np.abs(ours - ref).max())
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    print(f"{d}: {len(weights)} tensors, all read; logits max |diff| {err:.3g} (tolerance {tol:.3g})")
    return 0 if err <= tol else 1


if __name__ == "__main__":
    sys.exit(main())
