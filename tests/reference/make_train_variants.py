#!/usr/bin/env python3
"""Training ground truth for ConvNeXt: loss, gradients and AdamW steps from the PyTorch twin.

A test-time tool, never a runtime dependency of the engine. The forward and the loss are the ones
of tests/reference/make_variants.py (an independent twin of transformers' modeling_convnext,
imported here as a module); the gradients are torch autograd through that forward, the optimizer
is torch.optim.AdamW itself. The real transformers training fixtures in
../shared/fixtures/hf/train_* stay the ground truth; this tool is used as ground truth only for
configurations they do not cover (other activations, no layer scale, 3 / deep stages, one input
channel, regression, ignore_index, odd channel counts and input sizes, the plain transformers init,
ConvNeXt V2: the gradients through GRN, grn.weight and grn.bias included), and bf16 mixed precision
as `convnext train --dtype bf16` defines it (variants named bf16_*: every GEMM of the forward and
the backward, i.e. the stem and downsampling convolutions, pwconv1/2 and the classifier with their
input and weight gradients, takes its two inputs rounded to bfloat16 (nearest even) and sums them
exactly; in ConvNeXt V1 the activation's derivative is kept rounded to bfloat16 too (Bf16ActGrad);
everything else stays in the run's float dtype; see Bf16Functional).

  --check-shared DIR   validates the twin itself on train_tiny4 and train_multilabel: float32
                       forward, loss and backward against loss, logits, grad.pixel_values and
                       every grad.<parameter> (1e-3 * max(1, max|ref|)), then 3 AdamW steps on the
                       same batch against step1.<parameter>, step3.<parameter> and losses
                       (2e-5 * max(1, max|ref|)); fails on any mismatch, missing key or unused
                       weight.
  --out DIR            writes training variant fixtures in the layout of train_tiny4
                       (config.json, model.safetensors = initial weights, expected.safetensors,
                       meta.json). They are computed in float64 and stored as float32; a float32
                       rerun must land within the tolerances above or the generation fails.

Protocol (the shared fixtures' meta.json): torch.optim.AdamW over all parameters, lr 1e-3,
betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, constant learning rate, no clipping; step k is
zero_grad, forward(pixel_values, labels), loss.backward(), opt.step() on the same batch.
drop_path_rate is 0, so nothing is random.

expected.safetensors keys: pixel_values, labels (int64 for single-label classification, float32
otherwise), loss [1], logits, grad.pixel_values, grad.<name>, step1.<name>, step3.<name>,
losses [3] (the loss of the forward of step 1, 2, 3), where <name> runs over the keys of
model.safetensors (transformers' state-dict names, e.g. convnext.encoder.stages.0.layers.0.
pwconv1.weight, classifier.weight).

Run it with the interpreter that has torch, e.g. /usr/bin/python3. Without torch it prints a
message and exits 77 (ctest reads it as "skipped") without writing anything.
"""

import argparse
import json
import math
import os
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"make_train_variants: torch/numpy not importable ({exc}); nothing written. "
          "Install python3-torch python3-numpy and run with /usr/bin/python3.")
    sys.exit(77)  # ctest: SKIP_RETURN_CODE

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_variants as mv  # noqa: E402  (the twin: forward, loss, config, safetensors I/O)

GRAD_TOL = 1e-3  # loss, logits, grad.*: max|d| <= GRAD_TOL * max(1, max|ref|)
STEP_TOL = 2e-5  # step1.*, step3.*, losses
# bf16 variants' AdamW steps (step1.*, step3.*, losses): AdamW's first update is lr·g/(|g| + eps),
# ±lr for all but the tiniest gradients, so a gradient element near 0 whose sign a float32 and a
# float64 run see differently moves its weight by up to 2·lr; and the weights the two runs hold
# after a step differ by ~1e-7, enough to round a few of them to the neighbouring bf16 value
# (2^-8 apart) in the next forward. Only bf16's own precision holds for the steps.
BF16_STEP_TOL = 1e-2
STEPS = 3
OPTIMIZER = {
    "name": "torch.optim.AdamW",
    "lr": 1e-3,
    "betas": [0.9, 0.999],
    "eps": 1e-8,
    "weight_decay": 0.01,
    "steps": STEPS,
    "protocol": "step k: zero_grad, forward(pixel_values, labels), loss.backward(), opt.step(); "
                "same batch every step",
}
TRAIN_DIRS = ["train_tiny4", "train_multilabel"]


def tolerance_of(key):
    return STEP_TOL if key == "losses" or key.startswith(("step1.", "step3.")) else GRAD_TOL


def category_of(key, bf16=False):
    if bf16 and (key.startswith(("step1.", "step3.")) or key == "losses"):
        return "bf16_step"
    if key.startswith(("step1.", "step3.")) or key == "losses":
        return "step"
    if key.startswith("grad."):
        return "grad"
    return "forward"


# --------------------------------------------------------------------------------------------
# bf16 mixed precision: the GEMMs' inputs rounded to bfloat16, their sums in the run's dtype
# --------------------------------------------------------------------------------------------


def bf16_round(x):
    """x rounded to bfloat16 (round to nearest even) and back to its dtype."""
    return x.to(torch.bfloat16).to(x.dtype)


class Bf16Linear(torch.autograd.Function):
    """y = r(x)·r(W)ᵀ + b; dx = r(dy)·r(W), dW = r(dy)ᵀ·r(x), db = Σ dy (r: bf16_round)."""

    @staticmethod
    def forward(ctx, x, w, b):
        xr, wr = bf16_round(x), bf16_round(w)
        ctx.save_for_backward(xr, wr)
        ctx.has_bias = b is not None
        y = xr @ wr.t()
        return y + b if b is not None else y

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        dyr = bf16_round(dy)
        dx = dyr @ wr
        dw = dyr.reshape(-1, dy.shape[-1]).t() @ xr.reshape(-1, xr.shape[-1])
        db = dy.reshape(-1, dy.shape[-1]).sum(0) if ctx.has_bias else None
        return dx, dw, db


class Bf16PatchConv(torch.autograd.Function):
    """The stride = kernel convolutions (stem, downsampling): a GEMM over patches, rounded alike."""

    @staticmethod
    def forward(ctx, x, w, b, stride):
        xr, wr = bf16_round(x), bf16_round(w)
        ctx.save_for_backward(xr, wr)
        ctx.stride = stride
        ctx.x_shape = x.shape
        return F.conv2d(xr, wr, b, stride=stride)

    @staticmethod
    def backward(ctx, dy):
        xr, wr = ctx.saved_tensors
        dyr = bf16_round(dy)
        dx = torch.nn.grad.conv2d_input(ctx.x_shape, wr, dyr, stride=ctx.stride)
        dw = torch.nn.grad.conv2d_weight(xr, wr.shape, dyr, stride=ctx.stride)
        return dx, dw, dy.sum((0, 2, 3)), None


class Bf16ActGrad(torch.autograd.Function):
    """y = act(x); dx = dy·r(act'(x)): bf16 training keeps pwconv1's activation derivative in bf16
    (ConvNeXt V1; torch.autocast keeps h itself in bf16 for it). act' from autograd, in the run's dtype."""

    @staticmethod
    def forward(ctx, x, fn):
        with torch.enable_grad():
            xd = x.detach().requires_grad_(True)
            y = fn(xd)
            (d,) = torch.autograd.grad(y.sum(), xd)
        ctx.save_for_backward(bf16_round(d))
        return y.detach()

    @staticmethod
    def backward(ctx, dy):
        (d,) = ctx.saved_tensors
        return dy * d, None


def bf16_act2fn():
    """mv.ACT2FN with every activation's derivative rounded to bf16 (Bf16ActGrad)."""
    return {k: (lambda fn: (lambda x: Bf16ActGrad.apply(x, fn)))(fn) for k, fn in mv.ACT2FN.items()}


class Bf16Functional:
    """torch.nn.functional with linear and the non-grouped convolutions in bf16 mixed precision;
    the depthwise convolution (groups > 1), LayerNorm, activations and losses are untouched."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def linear(x, w, b=None):
        return Bf16Linear.apply(x, w, b)

    @staticmethod
    def conv2d(x, w, b=None, stride=1, padding=0, groups=1):
        if groups != 1:
            return F.conv2d(x, w, b, stride=stride, padding=padding, groups=groups)
        if padding != 0 or stride != w.shape[-1]:
            raise ValueError("bf16 twin: only the patch convolutions (stride = kernel, no padding) are GEMMs here")
        return Bf16PatchConv.apply(x, w, b, stride)


# --------------------------------------------------------------------------------------------
# one training run: forward + loss + backward, then STEPS AdamW steps on the same batch
# --------------------------------------------------------------------------------------------


def train_run(weights, cfg, pixel_values, labels, dtype, bf16=False):
    """weights: {state-dict name: numpy array}. Returns ({expected key: tensor}, problem_type,
    names the forward never read). bf16: the GEMMs in bf16 mixed precision (Bf16Functional)."""
    arch = cfg["architectures"][0]
    if mv.arch_kind(arch) != "ConvNextForImageClassification":
        raise ValueError(f"training fixtures are ConvNext(V2)ForImageClassification, not {arch}")
    names = sorted(weights)
    # torch.tensor copies: from_numpy(...).to(float32) would alias the caller's arrays, which the
    # optimizer then updates in place
    params = {k: torch.tensor(np.asarray(weights[k]), dtype=dtype, requires_grad=True) for k in names}
    pv = torch.tensor(np.asarray(pixel_values), dtype=dtype, requires_grad=True)
    lab = mv.labels_to_torch(labels, dtype)
    o = OPTIMIZER
    opt = torch.optim.AdamW([params[k] for k in names], lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                            weight_decay=o["weight_decay"])
    flat, losses, unused, problem_type = {}, [], set(), None
    for step in range(1, STEPS + 1):
        opt.zero_grad()
        P = mv.Params(params)
        plain_f, plain_act = mv.F, mv.ACT2FN
        mv.F = Bf16Functional() if bf16 else plain_f
        if bf16 and not mv.is_v2(cfg):  # V1 keeps act'(h) in bf16; V2 (GRN) keeps it in fp32
            mv.ACT2FN = bf16_act2fn()
        try:
            out = mv.classifier_forward(P, cfg, pv if step == 1 else pv.detach(), lab)
        finally:
            mv.F, mv.ACT2FN = plain_f, plain_act
        unused |= set(P.unused())
        out["loss"].backward()
        losses.append(out["loss"].detach().reshape(1))
        if step == 1:
            problem_type = out["problem_type"]
            flat["loss"] = out["loss"].detach().reshape(1).clone()
            flat["logits"] = out["logits"].detach().clone()
            flat["grad.pixel_values"] = pv.grad.detach().clone()
            for k in names:
                g = params[k].grad
                flat["grad." + k] = torch.zeros_like(params[k]) if g is None else g.detach().clone()
        opt.step()
        if step in (1, 3):
            for k in names:
                flat[f"step{step}.{k}"] = params[k].detach().clone()
    flat["losses"] = torch.cat(losses)
    return flat, problem_type, sorted(unused)


def expected_keys(param_names):
    keys = {"loss", "logits", "grad.pixel_values", "losses"}
    for k in param_names:
        keys |= {"grad." + k, "step1." + k, "step3." + k}
    return keys


# --------------------------------------------------------------------------------------------
# --check-shared
# --------------------------------------------------------------------------------------------


def check_shared(root):
    failures, checked = 0, 0
    worst = {"forward": ("", 0.0), "grad": ("", 0.0), "step": ("", 0.0)}
    for d in TRAIN_DIRS:
        mdir = os.path.join(root, d)
        cfg_path = os.path.join(mdir, "config.json")
        if not os.path.exists(cfg_path):
            print(f"FAIL {d}: missing {cfg_path}")
            failures += 1
            continue
        with open(cfg_path) as f:
            cfg = json.load(f)
        weights = mv.read_safetensors(os.path.join(mdir, "model.safetensors"))
        expected = mv.read_safetensors(os.path.join(mdir, "expected.safetensors"))
        print(f"{d} (act {cfg['hidden_act']}, {len(weights)} parameters, "
              f"input {list(expected['pixel_values'].shape)}, labels {expected['labels'].dtype})")
        t0 = time.time()
        ours, problem_type, unused = train_run(weights, cfg, expected["pixel_values"], expected["labels"],
                                               torch.float32)
        print(f"  info problem_type {problem_type}, forward/backward + {STEPS} steps in {time.time() - t0:.2f}s")
        if unused:
            print(f"  FAIL state-dict keys the twin never read: {unused}")
            failures += 1
        targets = {k: v for k, v in expected.items() if k not in mv.INPUT_KEYS}
        want = expected_keys(weights)
        for k in sorted(want - set(targets)):
            print(f"  FAIL {k}: expected by the protocol but absent from expected.safetensors")
            failures += 1
        for k in sorted(set(targets) - want):
            print(f"  FAIL {k}: in expected.safetensors but not a protocol key (parameter names differ?)")
            failures += 1
        for k in sorted(targets, key=lambda k: (category_of(k), k)):
            if k not in ours:
                continue
            stats = []
            checked += 1
            if not mv.compare("f32", k, ours[k], targets[k], tol=tolerance_of(k), stats=stats):
                failures += 1
            for name, rel in stats:
                c = category_of(name)
                if rel >= worst[c][1]:
                    worst[c] = (f"{d}/{name}", rel)
    for c in ("forward", "grad", "step"):
        name, rel = worst[c]
        print(f"worst {c:7s} relative error {rel:.2e}  ({name})")
    print(f"check-shared: {checked} comparisons, {failures} failure(s)")
    return failures == 0


# --------------------------------------------------------------------------------------------
# variant generation
# --------------------------------------------------------------------------------------------


def init_params(cfg, rng, perturb):
    """transformers' ConvNextPreTrainedModel._init_weights: Conv2d/Linear weights N(0,
    initializer_range), their biases 0, LayerNorm weight 1 / bias 0, layer_scale_parameter =
    layer_scale_init_value, V2's grn.weight and grn.bias 0. perturb=True then moves every parameter
    so that all gradients are of order 0.1 instead of ~1e-6 (layer scale 1e-6 and 0.02-weights
    starve the inner blocks): weights += N(0, 1/fan_in), biases and LayerNorm parameters += 0.1
    N(0,1), layer scale ~ U(0.1, 1), grn.weight ~ U(0.1, 0.5), grn.bias ~ 0.05 N(0,1).
    The names and shapes come from the twin's draw_params (its values are discarded)."""
    shapes = {k: v.shape for k, v in mv.draw_params(cfg, cfg["architectures"][0], rng).items()}
    std = np.float32(cfg["initializer_range"])
    P = {}
    for k in sorted(shapes):
        shape = shapes[k]
        if k.endswith(".grn.weight") or k.endswith(".grn.bias"):  # ConvNextV2GRN: zeros (identity)
            P[k] = np.zeros(shape, dtype=np.float32)
            if perturb:
                P[k] = (rng.uniform(0.1, 0.5, size=shape) if k.endswith(".weight") else
                        0.05 * rng.standard_normal(size=shape)).astype(np.float32)
        elif k.endswith("layer_scale_parameter"):
            P[k] = np.full(shape, cfg["layer_scale_init_value"], dtype=np.float32)
            if perturb:
                P[k] = rng.uniform(0.1, 1.0, size=shape).astype(np.float32)
        elif len(shape) >= 2:  # Conv2d / Linear weight
            P[k] = rng.standard_normal(size=shape, dtype=np.float32) * std
            if perturb:
                fan_in = int(np.prod(shape[1:]))
                P[k] += rng.standard_normal(size=shape, dtype=np.float32) * np.float32(1.0 / math.sqrt(fan_in))
        else:  # a bias, or a LayerNorm weight (1-D .weight)
            P[k] = np.full(shape, 1.0 if k.endswith(".weight") else 0.0, dtype=np.float32)
            if perturb:
                P[k] += np.float32(0.1) * rng.standard_normal(size=shape, dtype=np.float32)
    return P


def train_variants():
    return [
        dict(name="relu_noscale", note="hidden_act relu, layer_scale_init_value 0 (no layer_scale_parameter "
             "keys), 3 stages, single-label CE", hidden_act="relu", layer_scale_init_value=0.0,
             hidden_sizes=[8, 16, 24], depths=[1, 2, 1], num_labels=4, input=[3, 3, 48, 40]),
        dict(name="gray1_regression", note="num_channels 1, num_labels 1 (problem_type inferred: regression, "
             "MSE on squeezed logits/labels), patch 2, input 30x26", num_channels=1, num_labels=1,
             labels="regression", patch_size=2, hidden_sizes=[8, 12, 16, 20], depths=[1, 1, 1, 1],
             input=[3, 1, 30, 26]),
        dict(name="multi_regression", note="num_labels 3, problem_type regression: MSE on float labels [N,3]",
             num_labels=3, problem_type="regression", labels="regression", hidden_sizes=[8, 16, 24, 24],
             depths=[1, 1, 2, 1], input=[2, 3, 48, 48]),
        dict(name="deep", note="depths [3,3,4,2], gelu, layer scale perturbed, single-label CE",
             hidden_sizes=[8, 12, 16, 24], depths=[3, 3, 4, 2], num_labels=5, input=[2, 3, 64, 64]),
        dict(name="ignore_index", note="single-label CE, labels[1] = -100 (mean over the other three)",
             num_labels=5, ignored=[1], hidden_sizes=[8, 16, 24, 24], depths=[1, 1, 2, 1], input=[4, 3, 64, 64]),
        dict(name="gelu_tanh_multilabel", note="gelu_new, multi-label BCE on float labels, odd channel counts",
             hidden_act="gelu_new", num_labels=4, problem_type="multi_label_classification", labels="multi",
             hidden_sizes=[5, 7, 11, 13], depths=[1, 1, 2, 1], input=[3, 3, 48, 56]),
        dict(name="silu_init", note="silu, the plain transformers init (weights N(0,0.02), biases 0, LN 1/0, "
             "layer scale 1e-6, not perturbed: inner-block gradients ~1e-6 and below), odd input 45x37",
             hidden_act="silu", init="transformers", num_labels=3, hidden_sizes=[8, 16, 24, 24],
             depths=[1, 1, 2, 1], input=[2, 3, 45, 37]),
        dict(name="backbone_stem_eps", note="final LayerNorm eps 1e-6, num_labels 7, otherwise default-ish",
             layer_norm_eps=1e-6, num_labels=7, hidden_sizes=[8, 16, 24, 24], depths=[1, 1, 2, 1],
             input=[2, 3, 64, 64]),
        dict(name="v2_gelu", note="ConvNeXt V2 (GRN, no layer scale), v2_tiny4's shape, gelu, single-label CE: "
             "the gradient of every parameter, grn.weight and grn.bias included", model_type="convnextv2",
             hidden_sizes=[8, 16, 32, 48], depths=[1, 1, 2, 1], num_labels=5, input=[2, 3, 64, 64]),
        dict(name="v2_relu_odd", note="ConvNeXt V2, relu, 3 stages, odd widths and input 45x37, one input channel, "
             "multi-label BCE", model_type="convnextv2", hidden_act="relu", num_channels=1, hidden_sizes=[5, 7, 11],
             depths=[2, 1, 1], num_labels=3, problem_type="multi_label_classification", labels="multi",
             input=[3, 1, 45, 37]),
        dict(name="bf16_gelu", note="bf16 mixed precision (train --dtype bf16): every GEMM's inputs rounded to "
             "bfloat16, sums exact; gelu, layer scale perturbed, single-label CE, odd input 45x37",
             compute="bf16", hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1], num_labels=5, input=[2, 3, 45, 37]),
        dict(name="bf16_v2_relu_odd", note="bf16 mixed precision, ConvNeXt V2 (GRN), relu, odd widths and input, "
             "multi-label BCE", compute="bf16", model_type="convnextv2", hidden_act="relu", hidden_sizes=[5, 7, 11, 13],
             depths=[1, 1, 2, 1], num_labels=4, problem_type="multi_label_classification", labels="multi",
             input=[3, 3, 48, 40]),
    ]


def spec_args(spec):
    skip = {"name", "note", "input", "labels", "ignored", "init", "compute"}
    return {k: v for k, v in spec.items() if k not in skip}


def worst_by_category(ours, ref, bf16=False):
    worst = {"forward": 0.0, "grad": 0.0, "step": 0.0}
    if bf16:
        worst["bf16_step"] = 0.0
    for k, v in ref.items():
        r = v.to(torch.float64).numpy()
        d = float(np.max(np.abs(ours[k].to(torch.float64).numpy() - r))) / max(1.0, float(np.max(np.abs(r))))
        c = category_of(k, bf16)
        worst[c] = max(worst[c], d)
    return worst


def write_variant(root, spec):
    t0 = time.time()
    name = spec["name"]
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    cfg = mv.make_config(spec)
    rng = mv.rng_for("train/" + name)
    perturb = spec.get("init", "perturbed") != "transformers"
    weights = init_params(cfg, rng, perturb)
    pv = rng.standard_normal(size=spec["input"], dtype=np.float32)
    labels = mv.draw_labels(spec, cfg, spec["input"][0], rng)

    bf16 = spec.get("compute") == "bf16"
    truth, problem_type, unused = train_run(weights, cfg, pv, labels, torch.float64, bf16)
    if unused:
        raise RuntimeError(f"{name}: parameters never used: {unused}")
    f32, _, _ = train_run(weights, cfg, pv, labels, torch.float32, bf16)
    truth32 = {k: v.to(torch.float32) for k, v in truth.items()}
    worst = worst_by_category(f32, truth32, bf16)
    if (worst["forward"] > GRAD_TOL or worst["grad"] > GRAD_TOL or worst["step"] > STEP_TOL
            or worst.get("bf16_step", 0.0) > BF16_STEP_TOL):
        raise RuntimeError(f"{name}: a float32 run misses the float64 truth by {worst}; the tolerances "
                           "would not hold")
    grad_max = {k: float(truth["grad." + k].abs().max()) for k in weights}
    weakest = min(grad_max, key=grad_max.get)
    if perturb and grad_max[weakest] < 5e-3:
        raise RuntimeError(f"{name}: gradient of {weakest} is only {grad_max[weakest]:.1e} at most")
    if min(grad_max.values()) == 0.0:
        raise RuntimeError(f"{name}: gradient of {weakest} is zero")

    mv.write_safetensors(os.path.join(d, "model.safetensors"), weights, {"format": "pt"})
    expected = {"pixel_values": pv, "labels": labels}
    for k, v in truth32.items():
        expected[k] = v.numpy()
    assert set(expected) == expected_keys(weights) | mv.INPUT_KEYS
    mv.write_safetensors(os.path.join(d, "expected.safetensors"), expected)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(mv.config_json_text(cfg))
    losses = [float(x) for x in truth32["losses"]]
    meta = {
        "note": spec["note"],
        "config": spec_args(spec),
        "input_shape": list(spec["input"]),
        "labels": labels.tolist(),
        "optimizer": OPTIMIZER,
        "losses": losses,
        "problem_type": problem_type,
        "init": ("transformers _init_weights (N(0, initializer_range) weights, zero biases, LayerNorm 1/0, "
                 "layer scale = layer_scale_init_value)" if not perturb else
                 "transformers _init_weights, then perturbed: weights += N(0, 1/fan_in), biases and LayerNorm "
                 "parameters += 0.1 N(0,1), layer scale ~ U(0.1, 1)"),
        "generator": "tests/reference/make_train_variants.py (PyTorch twin of modeling_convnext + torch "
                     "autograd + torch.optim.AdamW, not transformers)",
        "compute": "float64 (torch CPU), stored as float32" + (
            "; bf16 mixed precision: the inputs of every GEMM (stem and downsampling convolutions, pwconv1/2, "
            "classifier; forward, input and weight gradients) rounded to bfloat16, and in V1 the activation's "
            "derivative" if bf16 else ""),
        "dtype": "bf16" if bf16 else "f32",
        "float32_worst_rel_error": worst,
        "grad_max_abs_min": {"parameter": weakest, "value": grad_max[weakest]},
        "tolerances": {"loss/logits/grad": GRAD_TOL, "step/losses": STEP_TOL,
                       "rule": "max|d| <= tol * max(1, max|ref|)",
                       **({"bf16 step/losses": BF16_STEP_TOL} if bf16 else {})},
        "torch": torch.__version__,
        "expected_keys": sorted(expected),
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"  wrote {d}/ ({len(weights)} parameters, {len(expected)} expected keys, {problem_type}, "
          f"losses {' '.join(f'{x:.4f}' for x in losses)}, min max|grad| {grad_max[weakest]:.1e} ({weakest}), "
          f"f32-vs-f64 worst forward {worst['forward']:.1e} grad {worst['grad']:.1e} step {worst['step']:.1e}, "
          f"{time.time() - t0:.2f}s)", flush=True)


def generate(root, only):
    specs = train_variants()
    if only:
        unknown = sorted(set(only) - {s["name"] for s in specs})
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}")
        specs = [s for s in specs if s["name"] in only]
    os.makedirs(root, exist_ok=True)
    t0 = time.time()
    for spec in specs:
        print(f"{spec['name']}: {spec['note']}", flush=True)
        write_variant(root, spec)
    print(f"wrote {len(specs)} training variant(s) under {root} in {time.time() - t0:.1f}s: "
          + " ".join(s["name"] for s in specs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check-shared", metavar="DIR", help="validate against ../shared/fixtures/hf/train_*")
    mode.add_argument("--out", metavar="DIR", help="write training variant fixtures under DIR")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="write only these variants (--out)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if args.check_shared:
        if not os.path.isdir(args.check_shared):
            print(f"make_train_variants: {args.check_shared} not found; skipping the self-check "
                  "(place ../shared beside the project)")
            return 77
        return 0 if check_shared(args.check_shared) else 1
    generate(args.out, set(args.only or []))
    return 0


if __name__ == "__main__":
    sys.exit(main())
