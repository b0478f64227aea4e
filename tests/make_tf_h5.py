#!/usr/bin/python3
"""Writes a transformers safetensors checkpoint of ConvNextForImageClassification as the
tf_model.h5 that TFConvNextForImageClassification.save_pretrained writes (Keras 2
model.save_weights, HDF5), for tests/test_tf_h5.cpp.

Layout, as keras' save_weights_to_hdf5_group writes it:
  /                    attrs: layer_names = [b"convnext", b"classifier"], backend, keras_version
  /convnext            attrs: weight_names = [b"tf_conv_next_for_image_classification/convnext/...:0", ...]
  /convnext/tf_conv_next_for_image_classification/convnext/embeddings/patch_embeddings/kernel:0   (dataset)
  /classifier          attrs: weight_names = [b".../classifier/kernel:0", b".../classifier/bias:0"]
Kernels in Keras layout (transformers' pt->tf conversion): Conv2D OIHW -> HWIO (the grouped
dwconv [C,1,7,7] -> [7,7,1,C]), Dense [out,in] -> [in,out]; LayerNorm weight/bias -> gamma/beta.

usage: make_tf_h5.py MODEL.safetensors OUT.h5 [--variant keras|alt|f16|wrong|base]
  keras  fixed-length string attributes, float32 (what Keras writes)
  alt    variable-length string attributes split into chunks (weight_names0, 1, ...), float64,
         DepthwiseConv2D-style dwconv kernels ([7,7,C,1], "depthwise_kernel:0")
  f16    as keras, float16 datasets
  wrong  a BERT-like weight name among the ConvNeXT ones
  base   TFConvNextModel: no classifier, model name tf_conv_next_model
  plain  an HDF5 file that is no Keras weights file (one dataset, no attributes)
Exits 77 when numpy or h5py is missing.
"""
import sys

try:
    import numpy as np
    import h5py
    from safetensors_np import read_safetensors
except ImportError as e:  # pragma: no cover
    print(f"make_tf_h5.py: {e}: skipping", file=sys.stderr)
    sys.exit(77)


def keras_weight(hf, value, model_name, depthwise):
    """transformers name + PyTorch tensor -> (Keras variable name, Keras-layout value)."""
    parts = hf.split(".")
    # "encoder.stages.0.layers.0.dwconv.weight": list indices stay joined ("stages.0", "layers.0",
    # "downsampling_layer.0") since they are the Keras layer names.
    joined = []
    for p in parts:
        if p.isdigit() and joined:
            joined[-1] += "." + p
        else:
            joined.append(p)
    leaf = joined[-1]
    is_norm = "layernorm" in joined[-2] or joined[-2].endswith("downsampling_layer.0")
    if leaf == "weight":
        if is_norm:
            leaf = "gamma"
        elif value.ndim == 4:
            if depthwise and joined[-2] == "dwconv":
                leaf = "depthwise_kernel"
                value = value.transpose(2, 3, 0, 1)  # [C,1,kh,kw] -> [kh,kw,C,1]
            else:
                leaf = "kernel"
                value = value.transpose(2, 3, 1, 0)  # OIHW -> HWIO
        elif value.ndim == 2:
            leaf = "kernel"
            value = value.T  # [out,in] -> [in,out]
    elif leaf == "bias" and is_norm:
        leaf = "beta"
    joined[-1] = leaf
    return model_name + "/" + "/".join(joined) + ":0", np.ascontiguousarray(value)


HDF5_OBJECT_HEADER_LIMIT = 64512


def save_attributes(group, name, data, vlen, force_chunks=1):
    """keras.saving.legacy.hdf5_format.save_attributes_to_hdf5_group (+ vlen / forced chunks)."""
    if vlen:
        arr = np.array([d.decode() for d in data], dtype=h5py.string_dtype("utf-8"))
    else:
        arr = np.asarray(data)  # fixed-length bytes, as Keras
    num_chunks = force_chunks
    chunks = np.array_split(arr, num_chunks)
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in chunks):
        num_chunks += 1
        chunks = np.array_split(arr, num_chunks)
    if num_chunks > 1:
        for i, c in enumerate(chunks):
            group.attrs["%s%d" % (name, i)] = c
    else:
        group.attrs[name] = arr


def main():
    args = sys.argv[1:]
    variant = "keras"
    if "--variant" in args:
        i = args.index("--variant")
        variant = args[i + 1]
        del args[i:i + 2]
    src, out = args
    if variant == "plain":
        with h5py.File(out, "w") as f:
            f.create_dataset("x", data=np.zeros(3, np.float32))
        return
    tensors = read_safetensors(src)
    base = variant == "base"
    model_name = "tf_conv_next_model" if base else "tf_conv_next_for_image_classification"
    dtype = {"keras": np.float32, "alt": np.float64, "f16": np.float16}.get(variant, np.float32)
    vlen = variant == "alt"
    layers = {"convnext": [], "classifier": []}
    for hf, value in tensors.items():
        if hf.startswith("classifier."):
            if base:
                continue
            layers["classifier"].append(keras_weight(hf, value, model_name, vlen))
        else:
            layers["convnext"].append(keras_weight(hf, value, model_name, vlen))
    if variant == "wrong":
        layers["convnext"].append((model_name + "/bert/encoder/layer_._0/attention/self/query/kernel:0",
                                   np.zeros((4, 4), np.float32)))
    if base:
        del layers["classifier"]
    with h5py.File(out, "w") as f:
        save_attributes(f, "layer_names", [n.encode() for n in layers], vlen)
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for layer, weights in layers.items():
            g = f.create_group(layer)
            save_attributes(g, "weight_names", [n.encode() for n, _ in weights], vlen, 3 if vlen else 1)
            for n, v in weights:
                d = g.create_dataset(n, v.shape, dtype=dtype)
                d[()] = v.astype(dtype)


if __name__ == "__main__":
    main()
