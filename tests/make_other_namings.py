#!/usr/bin/python3
"""Writes ConvNeXt checkpoints under the other namings for tests/test_key_mapping.cpp.

usage: make_other_namings.py <tiny4 fixture dir> <out dir>

From tiny4/model.safetensors (transformers names) it writes the SAME weights renamed as
  timm (safetensors; the MLP stored as 1x1 convs [4C,C,1,1] as timm's atto..nano do),
  facebookresearch (torch.save of {"model": state_dict, "epoch": 3}, and a training checkpoint
  that also holds an optimizer state with integer keys),
  torchvision (torch.save of a state dict, layer_scale [C,1,1]),
each as a single file (no config.json) and in a directory beside tiny4's config.json. Then a real
torchvision.models.convnext_tiny() with random weights (no download), perturbed so that every
block matters, saved with torch.save, and its logits on a fixed input computed by torchvision
in float64. Exits 77 when torch or torchvision is missing.
"""
import os
import shutil
import sys

try:
    import numpy as np
    import torch
    import torchvision
    from safetensors_np import read_safetensors, write_safetensors
except ImportError as e:  # pragma: no cover
    print(f"make_other_namings.py: skipped: {e}", file=sys.stderr)
    sys.exit(77)


def hf_to(naming, name):
    """transformers (ForImageClassification) name -> (other name, conv MLP / [C,1,1] reshape flag)."""
    p = name.split(".")
    if name.startswith("classifier."):
        return {"timm": "head.fc.", "original": "head.", "torchvision": "classifier.2."}[naming] + p[-1]
    assert p[0] == "convnext", name
    p = p[1:]
    if p[0] == "embeddings":
        k = "0" if p[1] == "patch_embeddings" else "1"
        return {"timm": f"stem.{k}.", "original": f"downsample_layers.0.{k}.", "torchvision": f"features.0.{k}."}[naming] + p[2]
    if p[0] == "layernorm":
        return {"timm": "head.norm.", "original": "norm.", "torchvision": "classifier.0."}[naming] + p[1]
    assert p[0] == "encoder" and p[1] == "stages"
    s = int(p[2])
    if p[3] == "downsampling_layer":
        k, leaf = p[4], p[5]
        return {"timm": f"stages.{s}.downsample.{k}.", "original": f"downsample_layers.{s}.{k}.",
                "torchvision": f"features.{2 * s}.{k}."}[naming] + leaf
    assert p[3] == "layers"
    j, what = p[4], p[5]
    leaf = "." + p[6] if len(p) > 6 else ""
    table = {
        "timm": {"dwconv": "conv_dw", "layernorm": "norm", "pwconv1": "mlp.fc1", "pwconv2": "mlp.fc2", "layer_scale_parameter": "gamma"},
        "original": {"dwconv": "dwconv", "layernorm": "norm", "pwconv1": "pwconv1", "pwconv2": "pwconv2", "layer_scale_parameter": "gamma"},
        "torchvision": {"dwconv": "block.0", "layernorm": "block.2", "pwconv1": "block.3", "pwconv2": "block.5", "layer_scale_parameter": "layer_scale"},
    }[naming]
    base = {"timm": f"stages.{s}.blocks.{j}.", "original": f"stages.{s}.{j}.", "torchvision": f"features.{2 * s + 1}.{j}."}[naming]
    return base + table[what] + leaf


def renamed(hf, naming):
    out = {}
    for name, arr in hf.items():
        other = hf_to(naming, name)
        if naming == "timm" and (name.endswith("pwconv1.weight") or name.endswith("pwconv2.weight")):
            arr = arr.reshape(arr.shape + (1, 1))
        if naming == "torchvision" and name.endswith("layer_scale_parameter"):
            arr = arr.reshape(arr.shape + (1, 1))
        assert other not in out, other
        out[other] = arr
    return out


def to_torch(sd):
    from collections import OrderedDict
    return OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v))) for k, v in sd.items())


def main():
    fixture, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    hf = read_safetensors(os.path.join(fixture, "model.safetensors"))
    cfg = os.path.join(fixture, "config.json")

    timm = renamed(hf, "timm")
    write_safetensors(os.path.join(out, "timm.safetensors"), timm)
    original = to_torch(renamed(hf, "original"))
    torch.save({"model": original, "epoch": 3}, os.path.join(out, "original.pth"))
    opt_state = {"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros(3)}},
                 "param_groups": [{"lr": 0.004, "betas": (0.9, 0.999), "weight_decay": 0.05, "amsgrad": False,
                                   "foreach": None, "params": [0]}]}
    torch.save({"model": original, "optimizer": opt_state, "epoch": 3, "scaler": {"scale": 65536.0, "_growth_tracker": 7}},
               os.path.join(out, "original_train.pth"))
    torch.save(to_torch(renamed(hf, "torchvision")), os.path.join(out, "torchvision.pth"))
    for naming, fname in (("timm", "timm.safetensors"), ("original", "original.pth"), ("torchvision", "torchvision.pth")):
        d = os.path.join(out, naming + "_with_config")
        os.makedirs(d, exist_ok=True)
        shutil.copyfile(cfg, os.path.join(d, "config.json"))
        shutil.copyfile(os.path.join(out, fname), os.path.join(d, fname))

    # A real torchvision ConvNeXt-T, random weights, perturbed so that layer scale, LayerNorms and
    # biases all matter (its own init: layer_scale 1e-6, LN 1/0, biases 0).
    torch.manual_seed(0)
    model = torchvision.models.convnext_tiny()  # weights=None: no download
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.uniform_(0.2, 0.6)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.05)
            elif p.dim() == 1:  # LayerNorm weights
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.eval()
    torch.save(model.state_dict(), os.path.join(out, "torchvision_convnext_tiny.pth"))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 96, 96, generator=g)
    with torch.no_grad():
        logits = model.double()(x.double())
    write_safetensors(os.path.join(out, "torchvision_convnext_tiny_expected.safetensors"),
                      {"pixel_values": x.numpy(), "logits": logits.numpy()})
    with open(os.path.join(out, "ok"), "w") as f:
        f.write(f"torch {torch.__version__} torchvision {torchvision.__version__}\n")


if __name__ == "__main__":
    main()
