#!/usr/bin/env python3
"""Independent PyTorch twin of Hugging Face transformers' modeling_convnext (ConvNeXT v1) and
modeling_convnextv2 (ConvNeXt V2: GRN after the activation, no layer scale).

This is a test-time tool, never a runtime dependency of the engine. It re-implements, in plain
torch (Debian's python3-torch, no transformers, no safetensors package), the forward semantics of
ConvNextForImageClassification, ConvNextModel and ConvNextBackbone and of their ConvNextV2 forms
(config model_type "convnextv2"), plus the classification loss.
The real transformers fixtures in ../shared/fixtures/hf stay the ground truth; this twin is used as
ground truth only for configurations those fixtures do not cover (other activations, stage counts,
patch sizes, odd channel counts, num_labels 0, multi-output regression, ignore_index, backbone
out_features including "stem", and full-size 22k checkpoints).

  --check-shared DIR   validates the twin itself: it recomputes every output stored in the shared
                       transformers fixtures (tiny4, tiny4/backbone, gray3_relu_noscale,
                       multilabel_gelunew, v2_tiny4, v2_tiny4/backbone) in float64, float32, and
                       float32 channels_last (the
                       path the large variants use) and fails on any mismatch or unused weight.
  --out DIR [--large]  writes variant fixtures in the same layout as the shared ones
                       (config.json, model.safetensors, expected.safetensors, meta.json);
                       --large adds full-size tiny/base 22k checkpoints, --large-only writes
                       only those.

Run it with the interpreter that has torch, e.g. /usr/bin/python3. Without torch it prints a
message and exits 77 (ctest reads it as "skipped") without writing anything; the C++ variant
tests then skip too.
"""

import argparse
import json
import math
import os
import shutil
import sys
import time
import zlib

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from safetensors_np import read_safetensors, write_safetensors
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"make_variants: torch/numpy not importable ({exc}); nothing written. "
          "Install python3-torch python3-numpy and run with /usr/bin/python3.")
    sys.exit(77)  # ctest: SKIP_RETURN_CODE

TOL = 1e-4  # max|ours - ref| <= TOL * max(1, max|ref|), the project's forward tolerance
BLOCK_LN_EPS = 1e-6  # hard-coded in modeling_convnext for every LayerNorm except the pooled one
TRANSFORMERS_VERSION = "5.17.0"  # the version the shared fixtures' config.json files carry

# --------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length, JSON header, raw little-endian data
# --------------------------------------------------------------------------------------------



# --------------------------------------------------------------------------------------------
# activations: transformers' ACT2FN, formulas as activations.py writes them
# --------------------------------------------------------------------------------------------

def _gelu_tanh(x):  # NewGELUActivation ("gelu_new"); F.gelu(approximate="tanh") is the same function
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT2FN = {
    "gelu": lambda x: F.gelu(x),  # exact erf form
    "gelu_python": lambda x: x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_accurate": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "gelu_10": lambda x: torch.clip(F.gelu(x), -10.0, 10.0),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "relu2": lambda x: torch.square(F.relu(x)),
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
    "silu": F.silu,
    "swish": F.silu,
    "mish": F.mish,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": lambda x: x,
    "laplace": lambda x: 0.5 * (1.0 + torch.erf((x - 0.707107) / (0.282095 * math.sqrt(2.0)))),
    # Not in transformers' ACT2FN (ConvNextConfig(hidden_act="selu") fails there with KeyError);
    # kept because the engine accepts it as an extension.
    "selu": F.selu,
}
NOT_IN_TRANSFORMERS = {"selu"}

# --------------------------------------------------------------------------------------------
# config helpers (ConvNextConfig / BackboneConfigMixin semantics)
# --------------------------------------------------------------------------------------------


def num_labels_of(cfg):
    if cfg.get("id2label") is not None:
        return len(cfg["id2label"])
    return cfg.get("num_labels", 2)


def stage_names_of(cfg):
    return ["stem"] + [f"stage{i}" for i in range(1, len(cfg["depths"]) + 1)]


def out_features_of(cfg):
    names = stage_names_of(cfg)
    feats, idx = cfg.get("out_features"), cfg.get("out_indices")
    if feats is None and idx is None:
        return [names[-1]]
    if feats is None:
        return [names[i % len(names)] for i in idx]
    return [s for s in names if s in feats]  # stage order


def is_v2(cfg):
    return cfg.get("model_type", "convnext") == "convnextv2"


def body_prefix(cfg):
    """base_model_prefix: where ForImageClassification keeps the body."""
    return "convnextv2." if is_v2(cfg) else "convnext."


def arch_kind(arch):
    """ConvNextV2Backbone -> ConvNextBackbone: the V2 classes have the V1 classes' structure."""
    return arch.replace("ConvNextV2", "ConvNext")


def grn(x, w, b):
    """ConvNextV2GRN on channels-last x [N, H, W, C]; w, b [1, 1, 1, C]."""
    g = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)
    n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
    return w * (x * n) + b + x


class Params:
    """A state dict that records which keys were read, so the checks can see unused keys."""

    def __init__(self, tensors):
        self.t = tensors
        self.used = set()

    def __getitem__(self, k):
        self.used.add(k)
        return self.t[k]

    def __contains__(self, k):
        return k in self.t

    def unused(self):
        return sorted(set(self.t) - self.used)


# --------------------------------------------------------------------------------------------
# the forward
# --------------------------------------------------------------------------------------------


def ln_channels_first(x, w, b, eps):
    # v5 ConvNextLayerNorm(channels_first): permute to NHWC, F.layer_norm over C, permute back
    return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), w, b, eps).permute(0, 3, 1, 2)


def fast_block(P, lp, x, c, act, use_scale, v2=False):
    """The same block computed channels_last with the two Linear layers as 1x1 convolutions.
    Debian's torch links the reference BLAS, so F.linear is ~15x slower than oneDNN's 1x1
    convolution; this path only reorders float32 sums (--check-shared validates it too)."""
    residual = x
    y = F.conv2d(x, P[lp + "dwconv.weight"], P[lp + "dwconv.bias"], padding=3, groups=c)
    y = F.layer_norm(y.permute(0, 2, 3, 1), (c,), P[lp + "layernorm.weight"], P[lp + "layernorm.bias"],
                     BLOCK_LN_EPS).permute(0, 3, 1, 2)
    w1, w2 = P[lp + "pwconv1.weight"], P[lp + "pwconv2.weight"]
    y = F.conv2d(y, w1.view(*w1.shape, 1, 1), P[lp + "pwconv1.bias"])
    y = act(y)
    if v2:
        y = grn(y.permute(0, 2, 3, 1), P[lp + "grn.weight"], P[lp + "grn.bias"]).permute(0, 3, 1, 2)
    y = F.conv2d(y, w2.view(*w2.shape, 1, 1), P[lp + "pwconv2.bias"])
    if use_scale:
        y = P[lp + "layer_scale_parameter"].view(1, c, 1, 1) * y
    return residual + y


def encoder_forward(P, cfg, pixel_values, prefix, fast=False):
    """Embeddings + encoder. Returns hidden_states: [embedding output, stage 1 .. stage n].
    fast=True computes the blocks channels_last with oneDNN 1x1 convolutions (float32 use)."""
    hs, depths = cfg["hidden_sizes"], cfg["depths"]
    if pixel_values.shape[1] != cfg["num_channels"]:
        raise ValueError("Make sure that the channel dimension of the pixel values match with the "
                         "one set in the configuration.")
    act = ACT2FN[cfg["hidden_act"]]
    v2 = is_v2(cfg)
    use_scale = not v2 and cfg.get("layer_scale_init_value", 1e-6) > 0  # ConvNextV2Layer has none
    p = prefix + "embeddings."
    x = F.conv2d(pixel_values, P[p + "patch_embeddings.weight"], P[p + "patch_embeddings.bias"],
                 stride=cfg["patch_size"])
    x = ln_channels_first(x, P[p + "layernorm.weight"], P[p + "layernorm.bias"], BLOCK_LN_EPS)
    if fast:
        x = x.contiguous(memory_format=torch.channels_last)
    hidden = [x]
    for s in range(cfg["num_stages"]):
        cin = hs[s - 1] if s > 0 else hs[0]
        cout = hs[s]
        stride = 2 if s > 0 else 1
        sp = f"{prefix}encoder.stages.{s}."
        if cin != cout or stride > 1:
            x = ln_channels_first(x, P[sp + "downsampling_layer.0.weight"],
                                  P[sp + "downsampling_layer.0.bias"], BLOCK_LN_EPS)
            x = F.conv2d(x, P[sp + "downsampling_layer.1.weight"], P[sp + "downsampling_layer.1.bias"],
                         stride=stride)
        for j in range(depths[s]):
            lp = f"{sp}layers.{j}."
            if fast:
                x = fast_block(P, lp, x, cout, act, use_scale, v2)
                continue
            residual = x
            y = F.conv2d(x, P[lp + "dwconv.weight"], P[lp + "dwconv.bias"], padding=3, groups=cout)
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (cout,), P[lp + "layernorm.weight"], P[lp + "layernorm.bias"], BLOCK_LN_EPS)
            y = F.linear(y, P[lp + "pwconv1.weight"], P[lp + "pwconv1.bias"])
            y = act(y)
            if v2:
                y = grn(y, P[lp + "grn.weight"], P[lp + "grn.bias"])
            y = F.linear(y, P[lp + "pwconv2.weight"], P[lp + "pwconv2.bias"])
            if use_scale:
                y = P[lp + "layer_scale_parameter"] * y
            y = y.permute(0, 3, 1, 2)
            x = residual + y  # drop_path is the identity at inference
        hidden.append(x)
    return hidden


def model_forward(P, cfg, pixel_values, prefix="convnext.", fast=False):
    """ConvNextModel (prefix "") or the body of ConvNextForImageClassification (prefix "convnext.",
    "convnextv2." in V2)."""
    hidden = encoder_forward(P, cfg, pixel_values, prefix, fast)
    last = hidden[-1]
    pooled = F.layer_norm(last.mean([-2, -1]), (last.shape[1],), P[prefix + "layernorm.weight"],
                          P[prefix + "layernorm.bias"], cfg["layer_norm_eps"])
    return {"last_hidden_state": last, "pooler_output": pooled, "hidden_states": hidden}


def classification_loss(logits, labels, cfg):
    """ForSequenceClassificationLoss (v5) == the inline v4 code. Returns (loss, problem_type)."""
    n = num_labels_of(cfg)
    pt = cfg.get("problem_type")
    if pt is None:
        if n == 1:
            pt = "regression"
        elif n > 1 and labels.dtype in (torch.long, torch.int):
            pt = "single_label_classification"
        else:
            pt = "multi_label_classification"
    if pt == "regression":
        labels = labels.to(logits.dtype)
        if n == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze()), pt
        return F.mse_loss(logits, labels), pt
    if pt == "single_label_classification":
        return F.cross_entropy(logits.view(-1, n), labels.view(-1), ignore_index=-100), pt
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype)), pt


def classifier_forward(P, cfg, pixel_values, labels=None, fast=False):
    out = model_forward(P, cfg, pixel_values, body_prefix(cfg), fast)
    if num_labels_of(cfg) > 0:
        logits = F.linear(out["pooler_output"], P["classifier.weight"], P["classifier.bias"])
    else:
        logits = out["pooler_output"]  # classifier is nn.Identity
    out["logits"] = logits
    if labels is not None:
        out["loss"], out["problem_type"] = classification_loss(logits, labels, cfg)
    return out


def backbone_forward(P, cfg, pixel_values, fast=False):
    hidden = encoder_forward(P, cfg, pixel_values, "", fast)
    names = stage_names_of(cfg)
    wanted = set(out_features_of(cfg))
    maps = []
    for name, h in zip(names, hidden):
        if name in wanted:
            maps.append(ln_channels_first(h, P[f"hidden_states_norms.{name}.weight"],
                                          P[f"hidden_states_norms.{name}.bias"], BLOCK_LN_EPS))
    return {"feature_maps": maps, "hidden_states": hidden}


def run_architecture(arch, P, cfg, pixel_values, labels=None, fast=False):
    arch = arch_kind(arch)
    if arch == "ConvNextBackbone":
        return backbone_forward(P, cfg, pixel_values, fast)
    if arch == "ConvNextModel":
        return model_forward(P, cfg, pixel_values, "", fast)
    return classifier_forward(P, cfg, pixel_values, labels, fast)


def flatten_outputs(out, prefix=""):
    """Output dict -> {expected.safetensors key: tensor}."""
    flat = {}
    for k, v in out.items():
        if k in ("hidden_states", "feature_maps"):
            for i, t in enumerate(v):
                flat[f"{prefix}{k}.{i}"] = t
        elif k == "loss":
            flat[prefix + k] = v.reshape(1)
        elif torch.is_tensor(v):
            flat[prefix + k] = v
    return flat


def to_torch(params, dtype):
    return {k: torch.from_numpy(np.asarray(v)).to(dtype) for k, v in params.items()}


def labels_to_torch(a, dtype):
    t = torch.from_numpy(np.asarray(a))
    return t if t.dtype == torch.int64 else t.to(dtype)


# --------------------------------------------------------------------------------------------
# --check-shared
# --------------------------------------------------------------------------------------------

INPUT_KEYS = {"pixel_values", "labels"}


def compare(tag, name, ours, ref, tol=TOL, stats=None):
    """max|ours - ref| <= tol * max(1, max|ref|); appends (name, relative figure) to stats if given."""
    ours = ours.detach().to(torch.float64).numpy()
    ref = np.asarray(ref, dtype=np.float64)
    if ours.shape != ref.shape:
        print(f"  FAIL {tag:6s} {name:28s} shape {list(ours.shape)} != {list(ref.shape)}")
        return False
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 0.0)
    ok = diff <= tol * scale
    print(f"  {'ok  ' if ok else 'FAIL'} {tag:6s} {name:28s} max|d| {diff:.3e}  tol {tol * scale:.3e}"
          f"  ({diff / scale:.2e} rel)")
    if stats is not None:
        stats.append((name, diff / scale))
    return ok


def check_shared(root):
    failures = 0
    checked = 0
    cases = [("tiny4", "tiny4", "", True), ("tiny4/backbone", "tiny4", "backbone.", False),
             ("gray3_relu_noscale", "gray3_relu_noscale", "", True),
             ("multilabel_gelunew", "multilabel_gelunew", "", True)]
    if os.path.isdir(os.path.join(root, "v2_tiny4")):  # newer than the others
        cases += [("v2_tiny4", "v2_tiny4", "", True), ("v2_tiny4/backbone", "v2_tiny4", "backbone.", False)]
    else:
        print("note: no v2_tiny4 in the shared fixtures: the V2 (GRN) path of the twin is not checked")
    for model_dir, exp_dir, key_prefix, with_labels in cases:
        mdir = os.path.join(root, model_dir)
        cfg_path = os.path.join(mdir, "config.json")
        if not os.path.exists(cfg_path):
            print(f"FAIL {model_dir}: missing {cfg_path}")
            failures += 1
            continue
        with open(cfg_path) as f:
            cfg = json.load(f)
        arch = cfg["architectures"][0]
        weights = read_safetensors(os.path.join(mdir, "model.safetensors"))
        expected = read_safetensors(os.path.join(root, exp_dir, "expected.safetensors"))
        targets = {k[len(key_prefix):]: v for k, v in expected.items()
                   if k.startswith(key_prefix) and k not in INPUT_KEYS}
        if key_prefix == "":
            targets = {k: v for k, v in targets.items() if not k.startswith("backbone.")}
        print(f"{model_dir} ({arch}, act {cfg['hidden_act']}, {len(weights)} tensors, "
              f"input {list(expected['pixel_values'].shape)})")
        for dtype, tag, fast in ((torch.float64, "f64", False), (torch.float32, "f32", False),
                                 (torch.float32, "f32cl", True)):
            P = Params(to_torch(weights, dtype))
            pv = torch.from_numpy(expected["pixel_values"]).to(dtype)
            labels = labels_to_torch(expected["labels"], dtype) if with_labels else None
            with torch.no_grad():
                out = run_architecture(arch, P, cfg, pv, labels, fast)
                flat = flatten_outputs(out)
                if "logits_first_alone" in targets:
                    flat["logits_first_alone"] = run_architecture(arch, P, cfg, pv[:1], None, fast)["logits"]
            for name in sorted(targets):
                if name not in flat:
                    print(f"  FAIL {tag:6s} {name:28s} not produced by the twin")
                    failures += 1
                    continue
                checked += 1
                if not compare(tag, name, flat[name], targets[name]):
                    failures += 1
            unused = P.unused()
            if unused:
                print(f"  FAIL {tag:6s} state-dict keys the twin never read: {unused}")
                failures += 1
            if with_labels and "problem_type" in out:
                print(f"  info {tag:6s} problem_type {out['problem_type']}")
    print(f"check-shared: {checked} comparisons, {failures} failure(s)")
    return failures == 0


# --------------------------------------------------------------------------------------------
# variant generation
# --------------------------------------------------------------------------------------------


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode("utf-8")))


def draw_params(cfg, arch, rng):
    """Random float32 parameters so that every part matters: weights N(0,1)/sqrt(fan_in),
    biases N(0,0.1), LayerNorm weights 1+N(0,0.1) (biases N(0,0.1)), layer scale 0.4+N(0,0.05),
    V2's GRN weight 0.1+0.4*U(0,1) and bias 0.05*N(0,1) (transformers starts both at 0: identity)."""
    arch = arch_kind(arch)
    P = {}

    def normal(shape, mean, std):
        a = rng.standard_normal(size=shape, dtype=np.float32)
        a *= np.float32(std)
        if mean:
            a += np.float32(mean)
        return a

    def dense(name, shape, fan_in):
        P[name + ".weight"] = normal(shape, 0.0, 1.0 / math.sqrt(fan_in))
        P[name + ".bias"] = normal((shape[0],), 0.0, 0.1)

    def norm(name, c):
        P[name + ".weight"] = normal((c,), 1.0, 0.1)
        P[name + ".bias"] = normal((c,), 0.0, 0.1)

    pre = body_prefix(cfg) if arch == "ConvNextForImageClassification" else ""
    hs, depths, cin0, ps = cfg["hidden_sizes"], cfg["depths"], cfg["num_channels"], cfg["patch_size"]
    dense(pre + "embeddings.patch_embeddings", (hs[0], cin0, ps, ps), cin0 * ps * ps)
    norm(pre + "embeddings.layernorm", hs[0])
    for s in range(cfg["num_stages"]):
        cin, c = (hs[s - 1] if s > 0 else hs[0]), hs[s]
        sp = f"{pre}encoder.stages.{s}."
        if cin != c or s > 0:
            norm(sp + "downsampling_layer.0", cin)
            dense(sp + "downsampling_layer.1", (c, cin, 2, 2), cin * 4)
        for j in range(depths[s]):
            lp = f"{sp}layers.{j}."
            dense(lp + "dwconv", (c, 1, 7, 7), 49)
            norm(lp + "layernorm", c)
            dense(lp + "pwconv1", (4 * c, c), c)
            if is_v2(cfg):
                P[lp + "grn.weight"] = (np.float32(0.1) + np.float32(0.4) * rng.random(size=(1, 1, 1, 4 * c), dtype=np.float32))
                P[lp + "grn.bias"] = normal((1, 1, 1, 4 * c), 0.0, 0.05)
            dense(lp + "pwconv2", (c, 4 * c), 4 * c)
            if not is_v2(cfg) and cfg["layer_scale_init_value"] > 0:
                P[lp + "layer_scale_parameter"] = normal((c,), 0.4, 0.05)
    if arch == "ConvNextBackbone":
        num_features = [hs[0]] + list(hs)
        names = stage_names_of(cfg)
        for stage in out_features_of(cfg):
            norm(f"hidden_states_norms.{stage}", num_features[names.index(stage)])
    else:
        norm(pre + "layernorm", hs[-1])
        n = num_labels_of(cfg)
        if arch == "ConvNextForImageClassification" and n > 0:
            dense("classifier", (n, hs[-1]), hs[-1])
    return P


def make_config(spec):
    """A config.json dict as transformers 5.17's save_pretrained writes it (see tiny4/config.json,
    v2_tiny4/config.json for model_type convnextv2: V2 class names, no layer_scale_init_value)."""
    v2 = spec.get("model_type", "convnext") == "convnextv2"
    arch = spec.get("arch", "ConvNextForImageClassification")
    if v2:
        arch = arch.replace("ConvNext", "ConvNextV2")
    n = spec.get("num_labels", 5)
    names = spec.get("label_names") or [f"LABEL_{i}" for i in range(n)]
    depths = list(spec["depths"])
    stage_names = ["stem"] + [f"stage{i}" for i in range(1, len(depths) + 1)]
    if "out_features" in spec:
        out_features = [s for s in stage_names if s in spec["out_features"]]
    else:
        out_features = [stage_names[-1]]
    cfg = {
        "architectures": [arch],
        "depths": depths,
        "drop_path_rate": 0.0,
        "dtype": "float32",
        "hidden_act": spec.get("hidden_act", "gelu"),
        "hidden_sizes": list(spec["hidden_sizes"]),
        "id2label": {i: names[i] for i in range(n)},  # int keys: json sorts them numerically
        "image_size": spec.get("image_size", 224),
        "initializer_range": 0.02,
        "label2id": {names[i]: i for i in range(n)},
        "layer_norm_eps": spec.get("layer_norm_eps", 1e-12),
        "layer_scale_init_value": float(spec.get("layer_scale_init_value", 1e-6)),
        "model_type": "convnextv2" if v2 else "convnext",
        "num_channels": spec.get("num_channels", 3),
        "num_stages": len(depths),
        "out_features": out_features,
        "out_indices": [stage_names.index(s) for s in out_features],
        "patch_size": spec.get("patch_size", 4),
        "stage_names": stage_names,
        "transformers_version": TRANSFORMERS_VERSION,
    }
    if spec.get("problem_type") is not None:
        cfg["problem_type"] = spec["problem_type"]
    if v2:
        del cfg["layer_scale_init_value"]
    return cfg


def config_json_text(cfg):
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def draw_labels(spec, cfg, n_img, rng):
    n = num_labels_of(cfg)
    kind = spec.get("labels", "single")
    if kind == "single":
        lab = rng.integers(0, n, size=n_img).astype(np.int64)
        for i in spec.get("ignored", []):
            lab[i] = -100
        return lab
    if kind == "regression":
        shape = (n_img,) if n == 1 else (n_img, n)
        return rng.standard_normal(size=shape).astype(np.float32)
    if kind == "multi":
        width = n if n > 0 else cfg["hidden_sizes"][-1]  # num_labels 0: logits are the pooled features
        return (rng.random(size=(n_img, width)) < 0.5).astype(np.float32)
    raise ValueError(kind)


SMALL = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], input=[2, 3, 64, 64])


def small_variants():
    v = []
    for act in ["relu", "gelu_fast", "quick_gelu", "silu", "selu", "mish", "gelu_pytorch_tanh", "relu6",
                "leaky_relu", "sigmoid", "tanh", "linear"]:
        note = f"hidden_act {act}"
        if act in NOT_IN_TRANSFORMERS:
            note += " (NOT in transformers' ACT2FN: transformers cannot load this config; engine extension)"
        v.append(dict(name=f"act_{act}", note=note, hidden_act=act, **SMALL))
    v += [
        dict(name="stages2", note="2 stages", hidden_sizes=[8, 16], depths=[2, 1], input=[2, 3, 64, 64]),
        dict(name="stages3", note="3 stages, odd input, final LN eps 1e-3 (must be read from config: "
             "1e-12 there moves the logits by ~3e-3 relative)",
             hidden_sizes=[8, 16, 24], depths=[1, 2, 1], input=[2, 3, 50, 42], layer_norm_eps=1e-3),
        dict(name="patch2", note="patch 2, odd input (floor division everywhere)", patch_size=2,
             hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], input=[2, 3, 37, 45]),
        dict(name="patch8", note="patch 8, 4 stages, odd input 135x71 (stem drops 7 rows/cols)",
             patch_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], input=[2, 3, 135, 71]),
        dict(name="no_layer_scale", note="layer_scale_init_value 0: no layer_scale_parameter keys",
             layer_scale_init_value=0.0, **SMALL),
        dict(name="num_labels0", note="num_labels 0: classifier is Identity, logits = pooler_output; "
             "problem_type unset -> inferred multi_label_classification (BCE on [N, C_last] float labels)",
             num_labels=0, labels="multi", **SMALL),
        dict(name="regression_multi", note="num_labels 3, problem_type regression: MSE on [N,3]",
             num_labels=3, problem_type="regression", labels="regression", **SMALL),
        dict(name="ignore_index", note="single-label cross-entropy, one label = -100 (mean over the others)",
             num_labels=5, ignored=[1], hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1],
             input=[3, 3, 64, 64]),
        dict(name="wide_odd_channels", note="odd channel counts, 5 input channels, odd input, 7 labels",
             num_channels=5, num_labels=7, hidden_sizes=[13, 57, 35, 71], depths=[1, 1, 1, 1],
             input=[2, 5, 70, 66]),
        dict(name="backbone_stem_all", note="ConvNextBackbone, out_features stem/stage2/stage4",
             arch="ConvNextBackbone", num_labels=2, out_features=["stem", "stage2", "stage4"], **SMALL),
        # ConvNeXt V2 (GRN; the shared v2_tiny4 covers gelu, 4 stages, 64x64, the backbone)
        dict(name="v2_relu_stages3", note="V2, relu, 3 stages, odd input 50x42 (GRN over odd maps), final LN "
             "eps 1e-6", model_type="convnextv2", hidden_act="relu", hidden_sizes=[8, 16, 24], depths=[2, 1, 2],
             input=[3, 3, 50, 42], layer_norm_eps=1e-6),
        dict(name="v2_wide_odd_channels", note="V2, odd channel counts (4C = 52, 228, 140, 284), 5 input channels, "
             "patch 2, gelu_new, 7 labels", model_type="convnextv2", hidden_act="gelu_new", num_channels=5,
             num_labels=7, patch_size=2, hidden_sizes=[13, 57, 35, 71], depths=[1, 1, 1, 1], input=[2, 5, 37, 45]),
        dict(name="v2_multilabel_silu", note="V2, silu, multi-label BCE", model_type="convnextv2", hidden_act="silu",
             num_labels=4, problem_type="multi_label_classification", labels="multi", hidden_sizes=[8, 16, 24, 32],
             depths=[1, 1, 2, 1], input=[2, 3, 64, 64]),
        dict(name="v2_input160x128", note="V2 on a larger input (40x32 first stage: many row tiles per image, "
             "GRN statistics summed across them)", model_type="convnextv2", hidden_sizes=[8, 16, 24, 32],
             depths=[2, 1, 2, 1], input=[2, 3, 160, 128]),
        dict(name="v2_backbone_stem_all", note="ConvNextV2Backbone, out_features stem/stage2/stage4",
             model_type="convnextv2", arch="ConvNextBackbone", num_labels=2, out_features=["stem", "stage2", "stage4"],
             **SMALL),
    ]
    for spec in v:
        if spec.get("num_labels", 5) == 5 and spec.get("arch") is None:
            spec.setdefault("label_names", [f"class_{i}" for i in range(5)])
    return v


def large_variants():
    tiny = dict(hidden_sizes=[96, 192, 384, 768], depths=[3, 3, 9, 3])
    base = dict(hidden_sizes=[128, 256, 512, 1024], depths=[3, 3, 27, 3])
    v = []
    for preset, shape in (("tiny", tiny), ("base", base)):
        for size in (224, 384):
            v.append(dict(name=f"{preset}_{size}_22k", preset=preset, note=f"{preset} preset, 21841 labels, "
                          f"{size}x{size}, float32 reference", num_labels=21841, image_size=size,
                          layer_norm_eps=1e-12, input=[1, 3, size, size], large=True, **shape))
    return v


def spec_args(spec):
    skip = {"name", "note", "input", "labels", "ignored", "label_names", "large", "preset"}
    return {k: v for k, v in spec.items() if k not in skip}


def write_variant(root, spec, weights_cache):
    t0 = time.time()
    name = spec["name"]
    large = spec.get("large", False)
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    cfg = make_config(spec)
    arch = cfg["architectures"][0]
    rng = rng_for(name)

    # weights: the 224 and 384 large variants of one preset share one draw (a hard link on disk)
    key = spec.get("preset")
    model_path = os.path.join(d, "model.safetensors")
    if key is not None and key in weights_cache:
        params, src = weights_cache[key]
        shared_with = os.path.basename(os.path.dirname(src))
        if os.path.exists(model_path):
            os.remove(model_path)
        try:
            os.link(src, model_path)
        except OSError:
            shutil.copyfile(src, model_path)
    else:
        shared_with = None
        params = draw_params(cfg, arch, rng_for(key or name))
        write_safetensors(model_path, params, {"format": "pt"})
        if key is not None:
            weights_cache[key] = (params, model_path)
    t_weights = time.time() - t0

    pv = rng.standard_normal(size=spec["input"], dtype=np.float32)
    labels = None if arch_kind(arch) == "ConvNextBackbone" else draw_labels(spec, cfg, spec["input"][0], rng)

    expected = {"pixel_values": pv}
    if labels is not None:
        expected["labels"] = labels
    meta = {"note": spec["note"], "config": spec_args(spec), "input_shape": list(spec["input"]),
            "generator": "tests/reference/make_variants.py (PyTorch twin of modeling_convnext, "
                         "not transformers)",
            "torch": torch.__version__}
    if shared_with:
        meta["weights_shared_with"] = shared_with  # same draw; model.safetensors is a hard link
    with torch.no_grad():
        if large:
            # float32 straight through, channels_last + oneDNN (a float64 pass of base at 384 costs
            # minutes on 2 cores with the reference BLAS Debian's torch links)
            P = Params(to_torch(params, torch.float32))
            out = run_architecture(arch, P, cfg, torch.from_numpy(pv),
                                   labels_to_torch(labels, torch.float32), fast=True)
            flat = flatten_outputs(out)
            last = f"hidden_states.{cfg['num_stages']}"
            flat = {k: v for k, v in flat.items() if not k.startswith("hidden_states.") or k == last}
            meta["compute"] = "float32 (torch CPU, channels_last, oneDNN 1x1 convolutions)"
        else:
            P = Params(to_torch(params, torch.float64))
            pv64 = torch.from_numpy(pv).to(torch.float64)
            lab64 = None if labels is None else labels_to_torch(labels, torch.float64)
            out = run_architecture(arch, P, cfg, pv64, lab64)
            flat = flatten_outputs(out)
            if arch_kind(arch) != "ConvNextBackbone":
                flat["logits_first_alone"] = run_architecture(arch, P, cfg, pv64[:1])["logits"]
            # how far a plain float32 forward lands from the float64 truth (for the report/meta)
            P32 = to_torch(params, torch.float32)
            out32 = run_architecture(arch, P32, cfg, torch.from_numpy(pv),
                                     None if labels is None else labels_to_torch(labels, torch.float32))
            flat32 = flatten_outputs(out32)
            worst = 0.0
            for k, v in flat32.items():
                ref = flat[k].numpy()
                worst = max(worst, float(np.max(np.abs(v.double().numpy() - ref))) /
                            max(1.0, float(np.max(np.abs(ref)))))
            meta["compute"] = "float64 (torch CPU), stored as float32"
            meta["float32_forward_worst_rel_error"] = worst
        unused = P.unused()
        if unused:
            raise RuntimeError(f"{name}: parameters never used: {unused}")
    for k, v in flat.items():
        expected[k] = v.to(torch.float32).numpy()
    write_safetensors(os.path.join(d, "expected.safetensors"), expected)

    if "problem_type" in out:
        meta["problem_type"] = out["problem_type"]
        meta["loss"] = float(flat["loss"][0])
    if arch_kind(arch) == "ConvNextBackbone":
        meta["backbone"] = {"out_features": cfg["out_features"], "out_indices": cfg["out_indices"],
                            "stage_names": cfg["stage_names"]}
    meta["num_hidden_states"] = cfg["num_stages"] + 1
    meta["expected_keys"] = sorted(expected)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(config_json_text(cfg))
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    dt = time.time() - t0
    extra = ""
    if "float32_forward_worst_rel_error" in meta:
        extra = f", f32-vs-f64 worst {meta['float32_forward_worst_rel_error']:.1e}"
    print(f"  wrote {d}/ ({arch}, {len(params)} tensors, {len(expected)} expected keys, "
          f"weights {t_weights:.2f}s, total {dt:.2f}s{extra})", flush=True)


def generate(root, large, only, large_only=False):
    specs = large_variants() if large_only else small_variants() + (large_variants() if large else [])
    if only:
        unknown = sorted(set(only) - {s["name"] for s in specs})
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown} (the large ones need --large)")
        specs = [s for s in specs if s["name"] in only]
    os.makedirs(root, exist_ok=True)
    cache = {}
    t0 = time.time()
    for spec in specs:
        print(f"{spec['name']}: {spec['note']}", flush=True)
        write_variant(root, spec, cache)
    print(f"wrote {len(specs)} variant(s) under {root} in {time.time() - t0:.1f}s: "
          + " ".join(s["name"] for s in specs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check-shared", metavar="DIR", help="validate the twin on ../shared/fixtures/hf")
    mode.add_argument("--out", metavar="DIR", help="write variant fixtures under DIR")
    ap.add_argument("--large", action="store_true", help="also write the full-size 22k variants (--out)")
    ap.add_argument("--large-only", action="store_true", help="write only the full-size 22k variants (--out)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="write only these variants (--out)")
    args = ap.parse_args()
    # Two threads (this machine's cores). It also matters for speed: with one thread torch 1.13
    # routes batch<16 1x1 convolutions to its BLAS path instead of oneDNN (~40x slower here).
    torch.set_num_threads(2)
    if args.check_shared:
        if not os.path.isdir(args.check_shared):
            print(f"make_variants: {args.check_shared} not found; skipping the self-check "
                  "(place ../shared beside the project)")
            return 77
        return 0 if check_shared(args.check_shared) else 1
    generate(args.out, args.large, set(args.only or []), args.large_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
