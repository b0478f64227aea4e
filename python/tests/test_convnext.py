"""The Python package against transformers' numbers (../shared/fixtures/hf), `convnext classify`,
and the inputs and errors a Python user meets. Run with Debian's python3 -m pytest; the package is
found through PYTHONPATH (the build tree's build/python) or an installed copy, and the CLI through
CONVNEXT_CLI."""

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import convnext

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.environ.get("CONVNEXT_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures", "hf"))
CLI = os.environ.get("CONVNEXT_CLI", os.path.join(REPO, "build", "convnext"))
FASHION = os.path.join(REPO, "models", "convnext-fashion-mnist")
IMAGES = sorted(os.path.join(REPO, "examples", "images", f) for f in os.listdir(os.path.join(REPO, "examples", "images")))

needs_fixtures = pytest.mark.skipif(not os.path.isdir(FIXTURES), reason=f"shared fixtures not found at {FIXTURES}")


def read_safetensors(path):
    """{name: array} of a safetensors file (F32, I64, U8), read with the standard library."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    kinds = {"F32": np.float32, "I64": np.int64, "U8": np.uint8, "F64": np.float64}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=kinds[info["dtype"]]).reshape(info["shape"])
    return out


def close(ours, ref, rel=1e-4):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, f"shape {ours.shape} vs reference {ref.shape}"
    err = float(np.max(np.abs(ours.astype(np.float64) - ref)))
    bound = rel * max(1.0, float(np.max(np.abs(ref))))
    assert err <= bound, f"max |diff| {err} > {bound}"


# ---- models against transformers ----------------------------------------------------------------


@needs_fixtures
@pytest.mark.parametrize("name", ["tiny4", "gray3_relu_noscale", "multilabel_gelunew"])
def test_classifier_fixtures(name):
    d = os.path.join(FIXTURES, name)
    e = read_safetensors(os.path.join(d, "expected.safetensors"))
    model = convnext.ConvNextForImageClassification.from_pretrained(d)
    out = model(pixel_values=e["pixel_values"], labels=e["labels"], output_hidden_states=True)
    close(out.logits, e["logits"])
    close(out["logits"], e["logits"])  # also a dict
    close(out.pooler_output, e["pooler_output"])
    close(out.last_hidden_state, e["last_hidden_state"])
    close(np.array([out.loss]), e["loss"])
    assert len(out.hidden_states) == model.config.num_stages + 1
    for i, h in enumerate(out.hidden_states):
        close(h, e[f"hidden_states.{i}"])
    assert out[0] is out.loss and out[1] is out.logits  # transformers' tuple order


@needs_fixtures
def test_model_and_backbone():
    d = os.path.join(FIXTURES, "tiny4")
    e = read_safetensors(os.path.join(d, "expected.safetensors"))
    base = convnext.ConvNextModel.from_pretrained(d)
    out = base(pixel_values=e["pixel_values"])
    close(out.last_hidden_state, e["last_hidden_state"])
    close(out.pooler_output, e["pooler_output"])
    assert out.hidden_states is None
    bb = convnext.ConvNextBackbone.from_pretrained(os.path.join(d, "backbone"))
    out = bb(pixel_values=e["pixel_values"], output_hidden_states=True)
    assert len(out.feature_maps) == 3
    for i, fm in enumerate(out.feature_maps):
        close(fm, e[f"backbone.feature_maps.{i}"])
    for i, h in enumerate(out.hidden_states):
        close(h, e[f"backbone.hidden_states.{i}"])


V2 = os.path.join(FIXTURES, "v2_tiny4")
needs_v2_fixture = pytest.mark.skipif(not os.path.isdir(V2), reason=f"shared fixture {V2} not found")


@needs_v2_fixture
def test_v2_classes_against_transformers():
    """ConvNeXt V2 (GRN) through transformers' V2 class names, against modeling_convnextv2.py."""
    e = read_safetensors(os.path.join(V2, "expected.safetensors"))
    model = convnext.ConvNextV2ForImageClassification.from_pretrained(V2)
    assert isinstance(model.config, convnext.ConvNextV2Config)
    assert model.config.model_type == "convnextv2"
    assert model.config.architectures == ["ConvNextV2ForImageClassification"]
    out = model(pixel_values=e["pixel_values"], labels=e["labels"], output_hidden_states=True)
    close(out.logits, e["logits"])
    close(out.pooler_output, e["pooler_output"])
    close(out.last_hidden_state, e["last_hidden_state"])
    close(np.array([out.loss]), e["loss"])
    for i, h in enumerate(out.hidden_states):
        close(h, e[f"hidden_states.{i}"])
    close(model(pixel_values=e["pixel_values"][:1]).logits, e["logits_first_alone"])
    base = convnext.ConvNextV2Model.from_pretrained(V2)
    close(base(pixel_values=e["pixel_values"]).pooler_output, e["pooler_output"])
    bb = convnext.ConvNextV2Backbone.from_pretrained(os.path.join(V2, "backbone"))
    fm = bb(pixel_values=e["pixel_values"], output_hidden_states=True)
    for i, f in enumerate(fm.feature_maps):
        close(f, e[f"backbone.feature_maps.{i}"])
    # The generic classes load V2 too (the config says which network), from the .bin copy as well.
    close(convnext.ConvNextForImageClassification.from_pretrained(os.path.join(V2, "bin"))(pixel_values=e["pixel_values"]).logits,
          e["logits"])
    assert isinstance(convnext.ConvNextConfig.from_pretrained(V2), convnext.ConvNextV2Config)


@needs_fixtures
def test_v2_classes_refuse_v1_checkpoints():
    with pytest.raises(ValueError, match="not a ConvNeXt V2 checkpoint"):
        convnext.ConvNextV2ForImageClassification.from_pretrained(os.path.join(FIXTURES, "tiny4"))
    with pytest.raises(ValueError, match="not a ConvNeXt V2 checkpoint"):
        convnext.ConvNextV2Config.from_pretrained(os.path.join(FIXTURES, "tiny4"))


def test_v2_config_save_and_reload(tmp_path):
    cfg = convnext.ConvNextV2Config(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3, image_size=32)
    assert cfg.model_type == "convnextv2"
    with pytest.raises(AttributeError):
        cfg.layer_scale_init_value  # ConvNextV2Config has none
    m = convnext.ConvNextV2ForImageClassification(cfg, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    m.save_pretrained(tmp_path)
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["model_type"] == "convnextv2" and saved["architectures"] == ["ConvNextV2ForImageClassification"]
    w = read_safetensors(str(tmp_path / "model.safetensors"))
    assert w["convnextv2.encoder.stages.0.layers.0.grn.weight"].shape == (1, 1, 1, 32)
    assert not np.any(w["convnextv2.encoder.stages.0.layers.0.grn.weight"])  # transformers' init: GRN starts at 0
    again = convnext.ConvNextV2ForImageClassification.from_pretrained(tmp_path)
    np.testing.assert_array_equal(m(pixel_values=x).logits, again(pixel_values=x).logits)
    assert isinstance(convnext.ConvNextConfig(model_type="convnextv2"), convnext.ConvNextV2Config)
    # A V1 config given to a V2 class builds ConvNeXt V2 from its fields.
    v1cfg = convnext.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3)
    assert convnext.ConvNextV2Model(v1cfg).config.model_type == "convnextv2"


@needs_fixtures
def test_config_attributes():
    c = convnext.ConvNextConfig.from_pretrained(os.path.join(FIXTURES, "tiny4"))
    assert c.model_type == "convnext"
    assert c.hidden_sizes == [8, 16, 32, 48] or isinstance(c.hidden_sizes, list)
    assert isinstance(c.id2label, dict) and all(isinstance(k, int) for k in c.id2label)
    assert c.num_labels == len(c.id2label)
    assert c.label2id[c.id2label[0]] == 0
    d = c.to_dict()
    assert d["hidden_sizes"] == c.hidden_sizes
    fresh = convnext.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3)
    assert fresh.num_labels == 3 and fresh.hidden_sizes == [8, 16]
    with pytest.raises(ValueError):
        convnext.ConvNextConfig(hidden_sizes=[8, 16], depths=[1], num_stages=2)


def test_save_and_reload(tmp_path):
    cfg = convnext.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3, image_size=32)
    m = convnext.ConvNextForImageClassification(cfg, seed=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    m.save_pretrained(tmp_path)
    again = convnext.ConvNextForImageClassification.from_pretrained(tmp_path)
    np.testing.assert_array_equal(m(pixel_values=x).logits, again(pixel_values=x).logits)
    assert again.num_parameters() == m.num_parameters()
    loaded = convnext.ConvNextForImageClassification.from_pretrained(tmp_path)  # inference_only: released weights
    with pytest.raises(ValueError, match="inference_only"):
        loaded.save_pretrained(tmp_path / "again")


@needs_fixtures
def test_bfloat16_keeps_the_top1():
    d = os.path.join(FIXTURES, "tiny4")
    e = read_safetensors(os.path.join(d, "expected.safetensors"))
    m = convnext.ConvNextForImageClassification.from_pretrained(d, dtype="bfloat16")
    assert m.dtype == "bfloat16"
    close(m(pixel_values=e["pixel_values"]).logits, e["logits"], rel=3e-2)


@needs_fixtures
def test_int8_keeps_the_top1():
    d = os.path.join(FIXTURES, "tiny4")
    e = read_safetensors(os.path.join(d, "expected.safetensors"))
    m = convnext.ConvNextForImageClassification.from_pretrained(d, dtype="int8")
    assert m.dtype == "int8"
    logits = m(pixel_values=e["pixel_values"]).logits
    close(logits, e["logits"], rel=3e-2)
    assert (logits.argmax(-1) == e["logits"].argmax(-1)).all()
    assert not np.array_equal(logits, e["logits"])  # it did run in int8


# ---- the processor against transformers -------------------------------------------------------


@needs_fixtures
def test_processor_matches_transformers_pil_backend():
    d = os.path.join(FIXTURES, "preprocess")
    e = read_safetensors(os.path.join(d, "expected.safetensors"))
    meta = json.load(open(os.path.join(d, "meta.json")))
    checked = 0
    for case in meta["cases"]:
        if case.get("kind") != "slow" or case["key"] not in e:
            continue
        cfg = {k: v for k, v in case["processor_config"].items() if k != "image_processor_type"}
        proc = convnext.ConvNextImageProcessor(**cfg)
        rgb = e[f"rgb/{case['image']}"]
        px = proc(rgb)["pixel_values"]
        assert np.max(np.abs(px - e[case["key"]])) <= 1e-6, case["key"]
        checked += 1
    assert checked >= 10
    legacy = convnext.ConvNextImageProcessor.from_pretrained(os.path.join(d, "legacy_config"))
    assert np.max(np.abs(legacy(e["rgb/chelsea"])["pixel_values"] - e["legacy/slow/chelsea"])) <= 1e-6


def test_every_input_kind_gives_the_same_pixels(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    proc = convnext.ConvNextImageProcessor.from_pretrained(FASHION)
    path = IMAGES[0]
    from_path = proc(path)["pixel_values"]
    from_bytes = proc(open(path, "rb").read())["pixel_values"]
    from_pil = proc(PIL.open(path))["pixel_values"]
    from_array = proc(np.asarray(PIL.open(path).convert("L")))["pixel_values"]
    from_pathlike = proc(__import__("pathlib").Path(path))["pixel_values"]
    for other in (from_bytes, from_pil, from_array, from_pathlike):
        np.testing.assert_array_equal(other, from_path)
    batch = proc([path, open(IMAGES[1], "rb").read()])["pixel_values"]
    assert batch.shape == (2, 1, 32, 32)
    np.testing.assert_array_equal(batch[:1], from_path)


def test_torch_tensor_input():
    torch = pytest.importorskip("torch")
    model = convnext.ConvNextForImageClassification.from_pretrained(FASHION)
    proc = convnext.ConvNextImageProcessor.from_pretrained(FASHION)
    px = proc(IMAGES[:2])["pixel_values"]
    want = model(pixel_values=px).logits
    np.testing.assert_array_equal(model(pixel_values=torch.from_numpy(px)).logits, want)
    np.testing.assert_array_equal(model(pixel_values=torch.from_numpy(px).double().requires_grad_()).logits, want)
    pt = proc(IMAGES[:2], return_tensors="pt")["pixel_values"]
    assert isinstance(pt, torch.Tensor)
    np.testing.assert_array_equal(model(**{"pixel_values": pt}).logits, want)
    labels = torch.tensor([0, 1])
    assert model(pixel_values=pt, labels=labels).loss > 0


def test_outputs_own_their_memory():
    model = convnext.ConvNextForImageClassification.from_pretrained(FASHION)
    px = convnext.ConvNextImageProcessor.from_pretrained(FASHION)(IMAGES[:1])["pixel_values"]
    logits = model(pixel_values=px).logits
    keep = logits.copy()
    del model
    for _ in range(3):  # other work reusing the engine's buffers must not change them
        convnext.ConvNextForImageClassification.from_pretrained(FASHION)(pixel_values=px)
    np.testing.assert_array_equal(logits, keep)
    assert logits.flags["OWNDATA"] or logits.base is not None


# ---- the pipeline against `convnext classify` -------------------------------------------------


def test_pipeline_matches_classify():
    cli = subprocess.run([CLI, "classify", "--model", FASHION, "--json", "--top-k", "3"] + IMAGES,
                         capture_output=True, text=True, check=True)
    want = [json.loads(line) for line in cli.stdout.splitlines()]
    pipe = convnext.pipeline("image-classification", model=FASHION, batch_size=4)
    got = pipe(IMAGES, top_k=3)
    assert len(got) == len(IMAGES)
    for g, w in zip(got, want):
        preds = w["predictions"] if "predictions" in w else w["top"]
        assert [p["label"] for p in g] == [p["label"] for p in preds]
        for p, q in zip(g, preds):
            assert abs(p["score"] - q["score"]) <= 1e-6
    single = pipe(IMAGES[0])
    assert single[0]["label"] == want[0].get("predictions", want[0].get("top"))[0]["label"]
    assert len(single) == 5
    none = pipe(IMAGES[0], top_k=1, function_to_apply="none")
    assert none[0]["score"] > 1  # a logit, not a probability


# ---- errors ----------------------------------------------------------------------------------


def test_errors_are_python_exceptions_with_the_cli_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        convnext.ConvNextForImageClassification.from_pretrained(tmp_path / "missing")
    model = convnext.ConvNextForImageClassification.from_pretrained(FASHION)
    with pytest.raises(ValueError, match="channel dimension"):
        model(pixel_values=np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="4 dimensions"):
        model(pixel_values=np.zeros((3, 32, 32), np.float32))
    with pytest.raises(ValueError):
        model(pixel_values=None)
    corrupt = tmp_path / "bad"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(open(os.path.join(FASHION, "config.json")).read())
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match="model.safetensors"):
        convnext.ConvNextForImageClassification.from_pretrained(corrupt)
    proc = convnext.ConvNextImageProcessor.from_pretrained(FASHION)
    with pytest.raises(ValueError, match="image"):
        proc(b"definitely not an image")
    with pytest.raises(ValueError, match="uint8"):
        proc(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="unknown"):
        convnext.ConvNextImageProcessor(sizee=3)
    with pytest.raises(ValueError, match="function_to_apply"):
        convnext.pipeline(model=FASHION)(IMAGES[0], function_to_apply="tanh")


# ---- threads ---------------------------------------------------------------------------------


def test_two_threads_at_once():
    model = convnext.ConvNextForImageClassification.from_pretrained(FASHION)
    proc = convnext.ConvNextImageProcessor.from_pretrained(FASHION)
    px = [proc(IMAGES[i : i + 2])["pixel_values"] for i in (0, 4)]
    want = [model(pixel_values=p).logits for p in px]
    got = [[], []]
    errors = []

    def work(k):
        try:
            for _ in range(20):
                got[k].append(model(pixel_values=px[k]).logits)
                proc(IMAGES[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k in (0, 1):
        for g in got[k]:
            np.testing.assert_array_equal(g, want[k])


# ---- drop-in for transformers ----------------------------------------------------------------

TRANSFORMERS_SCRIPT = textwrap.dedent(
    """
    import sys
    from transformers import ConvNextImageProcessor, ConvNextForImageClassification

    checkpoint, image_path = sys.argv[1], sys.argv[2]
    processor = ConvNextImageProcessor.from_pretrained(checkpoint)
    model = ConvNextForImageClassification.from_pretrained(checkpoint)
    model.eval()
    inputs = processor(images=[image_path], return_tensors="np")
    outputs = model(**inputs)
    predicted = outputs.logits.argmax(-1).item()
    print(model.config.id2label[predicted])
    """
)


def test_replacing_the_transformers_import_runs_unchanged(tmp_path):
    script = TRANSFORMERS_SCRIPT.replace("from transformers import", "from convnext import")
    assert script.count("convnext") == 1  # only the import line changed
    path = tmp_path / "classify.py"
    path.write_text(script)
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(path), FASHION, IMAGES[0]], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    want = subprocess.run([CLI, "classify", "--model", FASHION, "--json", "--top-k", "1", IMAGES[0]],
                          capture_output=True, text=True, check=True)
    rec = json.loads(want.stdout.splitlines()[0])
    top = (rec.get("predictions") or rec.get("top"))[0]["label"]
    assert r.stdout.strip() == top


def test_import_from_any_directory(tmp_path):
    r = subprocess.run([sys.executable, "-c", "import convnext; print(convnext.__version__)"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == convnext.__version__


def test_help_and_stubs():
    assert "ConvNextForImageClassification" in convnext.ConvNextForImageClassification.__doc__
    assert convnext.ConvNextForImageClassification.from_pretrained.__doc__
    stub = os.path.join(os.path.dirname(convnext.__file__), "__init__.pyi")
    assert os.path.isfile(stub)
    assert os.path.isfile(os.path.join(os.path.dirname(convnext.__file__), "py.typed"))


# ---- training --------------------------------------------------------------------------------


def two_class_folder(tmp_path):
    """Four of the example images as an ImageFolder of two classes."""
    data = tmp_path / "data"
    for i, img in enumerate(IMAGES[:4]):
        cls = data / ("a" if i % 2 else "b")
        cls.mkdir(parents=True, exist_ok=True)
        (cls / os.path.basename(img)).write_bytes(open(img, "rb").read())
    return data


def test_train_with_progress(tmp_path):
    data = two_class_folder(tmp_path)
    seen = []
    metrics = convnext.train(model=FASHION, data=data, eval_data=data, output_dir=tmp_path / "run", steps=2,
                             batch_size=2, lr=1e-4, log_every=1, no_augment=True, workers=0,
                             ignore_mismatched_sizes=True, progress=seen.append)
    assert metrics["done"] is True and metrics["steps"] == 2
    assert "eval_loss" in metrics
    assert any("loss" in r for r in seen)
    again = convnext.ConvNextForImageClassification.from_pretrained(tmp_path / "run")
    assert again.config.num_labels == 2
    with pytest.raises(ValueError, match="unknown training option"):
        convnext.train(model=FASHION, data=data, output_dir=tmp_path / "x", stepz=1)


def test_train_in_bf16_mixed_precision(tmp_path):
    data = two_class_folder(tmp_path)
    metrics = convnext.train(model=FASHION, data=data, output_dir=tmp_path / "run", steps=2, batch_size=2,
                             no_augment=True, workers=0, ignore_mismatched_sizes=True, dtype="bf16")
    assert metrics["done"] is True and metrics["dtype"] == "bf16"
    with open(tmp_path / "run" / "trainer_state.json") as f:
        assert json.load(f)["dtype"] == "bf16"
    with pytest.raises(ValueError, match="bf16"):
        convnext.train(model=FASHION, data=data, output_dir=tmp_path / "y", steps=1, dtype="int8")
