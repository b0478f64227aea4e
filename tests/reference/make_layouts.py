#!/usr/bin/env python3
"""ConvNeXt checkpoints in the layouts of timm and facebookresearch, written by PyTorch twins of
those code bases, for tests/test_layouts.cpp.

A test-time tool, never a runtime dependency. Each twin is an nn.Module tree shaped as the
original (module names, parameter shapes, forward), written here in plain torch from timm's
timm/models/convnext.py (ConvNeXt, ConvNeXtBlock, GlobalResponseNormMlp / GlobalResponseNorm,
NormMlpClassifierHead, the 'patch' and 'overlap_tiered' stems) and facebookresearch/ConvNeXt-V2's
models/convnextv2.py and models/utils.py (LayerNorm channels_first written out, GRN with gamma
and beta [1, 1, 1, C]); neither package is imported. Its state_dict() is what those code bases
save, so the names and shapes in the files come from the module structure, not from a table.

usage: make_layouts.py OUT_DIR

Writes, from one draw of weights in transformers' naming per model (tests/reference/
make_variants.py's draw_params; hidden_sizes [8, 16, 24, 32], depths [1, 1, 2, 1], 5 labels):
  hf_v1/, hf_v2/              transformers layout (config.json + model.safetensors; final LN eps 1e-6)
  timm_v1_convmlp.safetensors timm V1 with conv_mlp=True (convnext_atto..nano): MLP as 1x1 convs
                              [4C, C, 1, 1], LayerNorm2d in the blocks
  timm_v2.safetensors         timm convnextv2_tiny.. layout (Linear MLP, mlp.grn.weight/bias [4C])
  timm_v2_convmlp.safetensors timm convnextv2_atto..nano layout (conv MLP and channels-first GRN)
  fb_v2.pt                    facebookresearch ConvNeXt-V2: torch.save({"model": state_dict, ...})
  timm_v1_ols.safetensors     timm convnext_atto_ols: the overlapping two-conv stem (no logits)
  expected.safetensors        pixel_values, logits_v1, logits_v2: each layout's twin run in float64
                              on the same input; the script fails unless every layout's twin and
                              the transformers twin (make_variants.py) agree to 1e-10.
Exits 77 when torch is missing.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover
    print(f"make_layouts.py: skipped: {exc}", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_variants as mv  # noqa: E402  (draw_params, make_config, the transformers twin, safetensors)

# ---- timm ------------------------------------------------------------------------------------


class LayerNorm2d(nn.LayerNorm):
    """timm.layers.LayerNorm2d: LayerNorm over the channels of NCHW."""

    def forward(self, x):
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class GlobalResponseNorm(nn.Module):
    """timm.layers.GlobalResponseNorm: weight, bias [C]; channels_last or NCHW."""

    def __init__(self, dim, eps=1e-6, channels_last=True):
        super().__init__()
        self.eps = eps
        self.spatial_dim, self.channel_dim, self.wb_shape = ((1, 2), -1, (1, 1, 1, -1)) if channels_last else \
            ((2, 3), 1, (1, -1, 1, 1))
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x_g = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
        x_n = x_g / (x_g.mean(dim=self.channel_dim, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(self.wb_shape), self.weight.view(self.wb_shape), x * x_n)


class TimmMlp(nn.Module):
    """timm.layers.Mlp / GlobalResponseNormMlp: fc1 → act → [grn] → fc2, Linear or 1x1 Conv2d."""

    def __init__(self, c, hidden, use_conv, use_grn):
        super().__init__()
        layer = (lambda i, o: nn.Conv2d(i, o, 1)) if use_conv else nn.Linear
        self.fc1 = layer(c, hidden)
        self.act = nn.GELU()
        if use_grn:
            self.grn = GlobalResponseNorm(hidden, channels_last=not use_conv)
        self.fc2 = layer(hidden, c)

    def forward(self, x):
        x = self.act(self.fc1(x))
        if hasattr(self, "grn"):
            x = self.grn(x)
        return self.fc2(x)


class TimmBlock(nn.Module):
    def __init__(self, c, conv_mlp, use_grn, ls_init_value):
        super().__init__()
        self.use_conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = LayerNorm2d(c, eps=1e-6) if conv_mlp else nn.LayerNorm(c, eps=1e-6)
        self.mlp = TimmMlp(c, 4 * c, conv_mlp, use_grn)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(c)) if ls_init_value is not None else None

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        if self.use_conv_mlp:
            x = self.mlp(self.norm(x))
        else:
            x = self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, -1, 1, 1))
        return x + shortcut


class TimmStage(nn.Module):
    def __init__(self, cin, cout, stride, depth, conv_mlp, use_grn, ls_init_value):
        super().__init__()
        if cin != cout or stride > 1:
            self.downsample = nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, cout, 2, stride=2))
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[TimmBlock(cout, conv_mlp, use_grn, ls_init_value) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(self.downsample(x))


class TimmHead(nn.Module):
    """NormMlpClassifierHead without hidden layer: pool → norm → flatten → fc."""

    def __init__(self, c, num_classes):
        super().__init__()
        self.norm = LayerNorm2d(c, eps=1e-6)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.norm(x.mean((2, 3), keepdim=True)).flatten(1))


class TimmConvNeXt(nn.Module):
    def __init__(self, dims, depths, num_classes, conv_mlp=False, use_grn=False, ls_init_value=1e-6, stem="patch"):
        super().__init__()
        if stem == "patch":
            self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0], eps=1e-6))
        else:  # 'overlap_tiered' (convnext_atto_ols, ...): two 3x3 stride-2 convolutions
            mid = dims[0] // 2
            self.stem = nn.Sequential(nn.Conv2d(3, mid, 3, stride=2, padding=1), nn.Conv2d(mid, dims[0], 3, stride=2, padding=1),
                                      LayerNorm2d(dims[0], eps=1e-6))
        self.stages = nn.Sequential(*[TimmStage(dims[i - 1] if i else dims[0], dims[i], 2 if i else 1, depths[i], conv_mlp,
                                                use_grn, ls_init_value) for i in range(len(dims))])
        self.norm_pre = nn.Identity()
        self.head = TimmHead(dims[-1], num_classes)

    def forward(self, x):
        return self.head(self.norm_pre(self.stages(self.stem(x))))


def hf_to_timm(hf, conv_mlp):
    """transformers names -> timm's (checkpoint_filter_fn read backwards), shapes as timm keeps them."""
    out = {}
    for k, v in hf.items():
        p = k.split(".")
        if p[0] in ("convnext", "convnextv2"):
            p = p[1:]
        if p[0] == "classifier":
            name = "head.fc." + p[1]
        elif p[0] == "layernorm":
            name = "head.norm." + p[1]
        elif p[0] == "embeddings":
            name = ("stem.0." if p[1] == "patch_embeddings" else "stem.1.") + p[2]
        elif p[3] == "downsampling_layer":
            name = f"stages.{p[2]}.downsample.{p[4]}.{p[5]}"
        else:
            what = {"dwconv": "conv_dw", "layernorm": "norm", "pwconv1": "mlp.fc1", "pwconv2": "mlp.fc2",
                    "grn": "mlp.grn", "layer_scale_parameter": "gamma"}[p[5]]
            name = f"stages.{p[2]}.blocks.{p[4]}.{what}" + ("." + p[6] if len(p) > 6 else "")
            if p[5] == "grn":
                v = v.reshape(-1)
            if conv_mlp and p[5] in ("pwconv1", "pwconv2") and p[6] == "weight":
                v = v.reshape(*v.shape, 1, 1)
        out[name] = v
    return out


# ---- facebookresearch ConvNeXt-V2 ------------------------------------------------------------


class FbLayerNorm(nn.Module):
    """models/utils.py LayerNorm: channels_last through F.layer_norm, channels_first written out."""

    def __init__(self, c, eps=1e-6, data_format="channels_last"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps, self.data_format, self.c = eps, data_format, (c,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.c, self.weight, self.bias, self.eps)
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class FbGRN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class FbBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = FbLayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = FbGRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class FbConvNeXtV2(nn.Module):
    def __init__(self, dims, depths, num_classes):
        super().__init__()
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, dims[0], kernel_size=4, stride=4), FbLayerNorm(dims[0], 1e-6, "channels_first"))] +
            [nn.Sequential(FbLayerNorm(dims[i], 1e-6, "channels_first"), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
             for i in range(len(dims) - 1)])
        self.stages = nn.ModuleList([nn.Sequential(*[FbBlock(dims[i]) for _ in range(depths[i])]) for i in range(len(dims))])
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x):
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return self.head(self.norm(x.mean([-2, -1])))


def hf_to_fb(hf):
    out = {}
    for k, v in hf.items():
        p = k.split(".")
        if p[0] == "classifier":
            out["head." + p[1]] = v
            continue
        p = p[1:]
        if p[0] == "layernorm":
            name = "norm." + p[1]
        elif p[0] == "embeddings":
            name = ("downsample_layers.0.0." if p[1] == "patch_embeddings" else "downsample_layers.0.1.") + p[2]
        elif p[3] == "downsampling_layer":
            name = f"downsample_layers.{p[2]}.{p[4]}.{p[5]}"
        elif p[5] == "grn":
            name = f"stages.{p[2]}.{p[4]}.grn." + ("gamma" if p[6] == "weight" else "beta")
        else:
            name = f"stages.{p[2]}.{p[4]}." + {"layernorm": "norm"}.get(p[5], p[5]) + "." + p[6]
        out[name] = v
    return out


# ---- main ------------------------------------------------------------------------------------


def load(module, sd):
    module.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}, strict=True)
    return module.double().eval()


def numpy_state(module):
    return {k: v.detach().to(torch.float32).numpy() for k, v in module.state_dict().items()}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    dims, depths = [8, 16, 24, 32], [1, 1, 2, 1]
    spec = dict(hidden_sizes=dims, depths=depths, num_labels=5, layer_norm_eps=1e-6)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 64, 64, generator=g, dtype=torch.float64)
    expected = {"pixel_values": x.to(torch.float32).numpy()}
    x = torch.from_numpy(expected["pixel_values"]).double()
    layouts = {}
    for tag, model_type in (("v1", "convnext"), ("v2", "convnextv2")):
        cfg = mv.make_config(dict(spec, model_type=model_type))
        hf = mv.draw_params(cfg, cfg["architectures"][0], mv.rng_for("layouts/" + tag))
        d = os.path.join(out, "hf_" + tag)
        os.makedirs(d, exist_ok=True)
        mv.write_safetensors(os.path.join(d, "model.safetensors"), hf, {"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(mv.config_json_text(cfg))
        with torch.no_grad():
            P = mv.Params(mv.to_torch(hf, torch.float64))
            ref = mv.classifier_forward(P, cfg, x)["logits"]
            assert not P.unused(), P.unused()
            twins = {}
            if tag == "v1":
                twins["timm_v1_convmlp.safetensors"] = load(TimmConvNeXt(dims, depths, 5, conv_mlp=True), hf_to_timm(hf, True))
            else:
                twins["timm_v2.safetensors"] = load(TimmConvNeXt(dims, depths, 5, use_grn=True, ls_init_value=None),
                                                    hf_to_timm(hf, False))
                twins["timm_v2_convmlp.safetensors"] = load(
                    TimmConvNeXt(dims, depths, 5, conv_mlp=True, use_grn=True, ls_init_value=None), hf_to_timm(hf, True))
                twins["fb_v2.pt"] = load(FbConvNeXtV2(dims, depths, 5), hf_to_fb(hf))
            for name, module in twins.items():
                logits = module(x)
                diff = float((logits - ref).abs().max())
                print(f"{name}: max |logits - transformers twin| = {diff:.2e}")
                if diff > 1e-10:
                    raise SystemExit(f"{name}: the layout's twin disagrees with the transformers twin by {diff}")
                layouts[name] = numpy_state(module)
        expected["logits_" + tag] = ref.to(torch.float32).numpy()
    for name, sd in layouts.items():
        path = os.path.join(out, name)
        if name.endswith(".pt"):  # facebookresearch's main_finetune.py checkpoints: {"model": ..., "epoch": ...}
            torch.save({"model": {k: torch.from_numpy(v) for k, v in sd.items()}, "epoch": 1}, path)
        else:
            mv.write_safetensors(path, sd)
    ols = TimmConvNeXt(dims, depths, 5, conv_mlp=True, stem="overlap_tiered")
    mv.write_safetensors(os.path.join(out, "timm_v1_ols.safetensors"), numpy_state(ols))
    mv.write_safetensors(os.path.join(out, "expected.safetensors"), expected)
    with open(os.path.join(out, "ok"), "w") as f:
        f.write(f"torch {torch.__version__}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
