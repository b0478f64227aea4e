// Training against transformers: gradients of one forward/backward and the parameters after 1
// and 3 AdamW steps, on the shared training fixtures (transformers 5.17 / torch) and on the
// variants tests/reference/make_train_variants.py generates (other activations, no layer
// scale, one input channel, regression, deeper nets, ignore_index, odd widths, ConvNeXt V2).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "convnext/convnext.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "model/parameters.h"
#include "kernels/kernels.h"
#include "test_util.h"
#include "train/backprop.h"
#include "train/optimizer.h"

namespace convnext::test {
namespace {

namespace fs = std::filesystem;

Labels labels_in(const io::SafetensorsFile& f) {
  if (f.find("labels")->dtype == "I64") return Labels::classes(f.get_i64("labels"));
  return Labels::floats(f.get_f32("labels"));
}

std::shared_ptr<detail::Parameters> load_trainable(const std::string& dir) {
  LoadOptions o;
  o.inference_only = false;
  return detail::Parameters::load(dir, o, Architecture::ForImageClassification);
}

// The arithmetic a fixture was computed in: meta.json's "dtype" ("bf16": the generated bf16
// mixed-precision variants), f32 otherwise.
DType dtype_of(const std::string& dir) {
  const fs::path meta = fs::path(dir) / "meta.json";
  if (!fs::exists(meta)) return DType::F32;
  return parse_dtype(io::read_json_file(meta.string()).value("dtype", std::string("f32")));
}

// Gradient of the mean loss w.r.t. every parameter and pixel_values: within 1e-3·max(1, max|ref|).
void check_gradients(const std::string& dir) {
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  train::Gradients g(*net);
  train::TrainGraph graph(*net, kernels::default_context(), dtype_of(dir));
  Tensor dpx;
  train::StepOptions so;
  so.grad_pixels = &dpx;
  const auto r = graph.forward_backward(e->get_f32("pixel_values"), labels_in(*e), g, so);
  EXPECT_TRUE(close(r.logits, e->get_f32("logits"), 1e-4)) << dir;
  EXPECT_NEAR(r.loss, e->get_f32("loss")[0], 1e-4 * std::max(1.0f, std::fabs(e->get_f32("loss")[0]))) << dir;
  EXPECT_TRUE(close(dpx, e->get_f32("grad.pixel_values"), 1e-3)) << dir << " grad.pixel_values";
  int checked = 0;
  for (size_t i = 0; i < g.names.size(); ++i) {
    ASSERT_TRUE(e->contains("grad." + g.names[i])) << g.names[i];
    EXPECT_TRUE(close(g.grads[i], e->get_f32("grad." + g.names[i]), 1e-3)) << dir << " grad." << g.names[i];
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

// torch.optim.AdamW(model.parameters(), lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay
// 0.01), the same batch at every step: parameters after steps 1 and 3 and the loss of each step.
// The bf16 variants' steps hold at bf16's precision only (make_train_variants.py: BF16_STEP_TOL).
void check_adamw(const std::string& dir) {
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  train::Gradients g(*net);
  const DType dtype = dtype_of(dir);
  const float tol = dtype == DType::BF16 ? 1e-2f : 2e-5f;
  train::TrainGraph graph(*net, kernels::default_context(), dtype);
  train::AdamWOptions o;
  o.lr = 1e-3;
  o.weight_decay = 0.01;
  o.decay_all = true;  // --weight-decay-all
  train::AdamW opt(g, o);
  const Tensor px = e->get_f32("pixel_values");
  const Labels labels = labels_in(*e);
  const Tensor losses = e->get_f32("losses");
  for (int step = 1; step <= 3; ++step) {
    g.zero();
    const auto r = graph.forward_backward(px, labels, g);
    EXPECT_NEAR(r.loss, losses[step - 1], tol * std::max(1.0f, std::fabs(losses[step - 1]))) << dir << " step " << step;
    opt.step(g, train::scheduled_lr("constant", o.lr, step - 1, 0, 3));
    if (step == 1 || step == 3)
      for (size_t i = 0; i < g.names.size(); ++i) {
        const std::string key = "step" + std::to_string(step) + "." + g.names[i];
        ASSERT_TRUE(e->contains(key)) << key;
        EXPECT_TRUE(close(*g.params[i], e->get_f32(key), tol)) << dir << " " << key;
      }
  }
}

TEST(TrainFixtures, GradientsTiny4) {
  REQUIRE_FIXTURES();
  check_gradients(fixture("train_tiny4"));
}

TEST(TrainFixtures, GradientsMultilabel) {
  REQUIRE_FIXTURES();
  check_gradients(fixture("train_multilabel"));
}

TEST(TrainFixtures, AdamWTiny4) {
  REQUIRE_FIXTURES();
  check_adamw(fixture("train_tiny4"));
}

TEST(TrainFixtures, AdamWMultilabel) {
  REQUIRE_FIXTURES();
  check_adamw(fixture("train_multilabel"));
}

// bf16 mixed precision (train --dtype bf16) against transformers' fp32 gradients: every GEMM of
// the forward and backward rounds its inputs to bf16 (8 significant bits), so the numbers move
// by bf16's tolerance (the one bf16 inference is held to), not fp32's; and they really move.
void check_bf16_gradients(const std::string& dir) {
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  train::Gradients g(*net), g32(*net);
  train::TrainGraph graph(*net, kernels::default_context(), DType::BF16), graph32(*net, kernels::default_context());
  const Tensor px = e->get_f32("pixel_values");
  const auto r = graph.forward_backward(px, labels_in(*e), g);
  graph32.forward_backward(px, labels_in(*e), g32);
  EXPECT_TRUE(close(r.logits, e->get_f32("logits"), 3e-2)) << dir;
  EXPECT_NEAR(r.loss, e->get_f32("loss")[0], 3e-2 * std::max(1.0f, std::fabs(e->get_f32("loss")[0]))) << dir;
  double worst = 0;  // the largest error relative to max(1, max|ref|), printed for the record
  size_t moved = 0;
  for (size_t i = 0; i < g.names.size(); ++i) {
    const Tensor ref = e->get_f32("grad." + g.names[i]);
    EXPECT_TRUE(close(g.grads[i], ref, 1e-2)) << dir << " grad." << g.names[i];
    double m = 1, d = 0;
    for (int64_t j = 0; j < ref.numel(); ++j) m = std::max(m, static_cast<double>(std::fabs(ref[j])));
    for (int64_t j = 0; j < ref.numel(); ++j) d = std::max(d, static_cast<double>(std::fabs(g.grads[i][j] - ref[j])));
    worst = std::max(worst, d / m);
    if (!close(g.grads[i], g32.grads[i], 1e-6)) ++moved;
  }
  std::printf("%s: bf16 gradients within %.2e of transformers' fp32 (relative to max(1, max|ref|)); %zu of %zu differ from our fp32\n",
              dir.c_str(), worst, moved, g.names.size());
  EXPECT_GT(moved, g.names.size() / 2) << "bf16 ran as fp32?";
}

TEST(TrainFixtures, Bf16GradientsStayNearTransformersFp32) {
  REQUIRE_FIXTURES();
  check_bf16_gradients(fixture("train_tiny4"));
  check_bf16_gradients(fixture("train_multilabel"));
}

// transformers' get_scheduler formulas (optimization.py), by hand: LambdaLR's factor at the step
// about to run.
TEST(TrainOptimizer, SchedulesAreTransformers) {
  using train::scheduled_lr;
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 1.0, 0, 10, 100), 0.0);  // warmup starts at 0
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 1.0, 5, 10, 100), 0.5);
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 1.0, 10, 10, 100), 1.0);
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 1.0, 55, 10, 100), 0.5);  // (100 − 55) / (100 − 10)
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 2.0, 0, 0, 4), 2.0);
  EXPECT_DOUBLE_EQ(scheduled_lr("linear", 2.0, 3, 0, 4), 0.5);
  EXPECT_NEAR(scheduled_lr("cosine", 1.0, 55, 10, 100), 0.5, 1e-15);  // 0.5·(1 + cos(π·0.5))
  EXPECT_NEAR(scheduled_lr("cosine", 1.0, 10, 10, 100), 1.0, 1e-15);
  EXPECT_NEAR(scheduled_lr("cosine", 1.0, 40, 10, 100), 0.5 * (1 + std::cos(M_PI / 3)), 1e-15);
  EXPECT_DOUBLE_EQ(scheduled_lr("constant", 3.0, 2, 4, 100), 1.5);  // constant_with_warmup
  EXPECT_DOUBLE_EQ(scheduled_lr("constant", 3.0, 50, 4, 100), 3.0);
  EXPECT_THROW(scheduled_lr("wavy", 1.0, 0, 0, 1), Error);
}

// A resumed run whose length changed: the rate at the resume step is the saved schedule's, then
// it falls to 0 at the new end and never rises; unchanged settings keep the schedule exactly.
TEST(TrainOptimizer, AContinuedScheduleNeverJumpsBackUp) {
  for (const char* kind : {"linear", "cosine", "constant"}) {
    const train::LrSchedule saved{kind, 1e-3, 10, 100};
    EXPECT_EQ(train::continue_schedule(saved, saved, 40).anchor_step, -1) << kind;  // the same run goes on as it was
    const train::LrSchedule longer = train::continue_schedule(saved, {kind, 1e-3, 10, 300}, 40);
    EXPECT_DOUBLE_EQ(longer.at(40), saved.at(40)) << kind;
    double prev = longer.at(40);
    for (int64_t t = 41; t <= 300; ++t) {
      EXPECT_LE(longer.at(t), prev) << kind << " at " << t;
      prev = longer.at(t);
    }
    if (std::string(kind) != "constant") {
      EXPECT_NEAR(longer.at(300), 0.0, 1e-18) << kind;
    }
    // Continued again, unchanged: the anchored schedule itself.
    const train::LrSchedule again = train::continue_schedule(longer, {kind, 1e-3, 10, 300}, 120);
    EXPECT_DOUBLE_EQ(again.at(150), longer.at(150)) << kind;
    // A shorter one decays faster, from the same rate.
    const train::LrSchedule shorter = train::continue_schedule(saved, {kind, 1e-3, 10, 60}, 40);
    EXPECT_DOUBLE_EQ(shorter.at(40), saved.at(40)) << kind;
  }
  // A new peak rate starts there; before the end of warmup the warmup simply goes on.
  const train::LrSchedule saved{"linear", 1e-3, 10, 100};
  EXPECT_DOUBLE_EQ(train::continue_schedule(saved, {"linear", 5e-4, 10, 100}, 40).at(40), 5e-4);
  const train::LrSchedule early = train::continue_schedule(saved, {"linear", 1e-3, 10, 200}, 4);
  EXPECT_DOUBLE_EQ(early.at(4), saved.at(4));
  EXPECT_DOUBLE_EQ(early.at(10), 1e-3);
  EXPECT_DOUBLE_EQ(early.at(105), 1e-3 * 95 / 190);
}

// The Trainer's decay groups: no decay on biases and LayerNorm weights.
TEST(TrainOptimizer, DecayGroupsAreTheTrainers) {
  for (const char* name : {"convnext.embeddings.patch_embeddings.weight", "convnext.encoder.stages.1.downsampling_layer.1.weight",
                           "convnext.encoder.stages.0.layers.0.pwconv1.weight", "convnext.encoder.stages.0.layers.0.dwconv.weight",
                           "convnext.encoder.stages.0.layers.0.layer_scale_parameter", "classifier.weight",
                           "convnextv2.encoder.stages.0.layers.0.grn.weight"})  // ConvNextV2GRN is no LayerNorm
    EXPECT_TRUE(train::trainer_decays(name)) << name;
  for (const char* name : {"convnext.embeddings.layernorm.weight", "convnext.encoder.stages.1.downsampling_layer.0.weight",
                           "convnext.encoder.stages.0.layers.0.layernorm.weight", "convnext.layernorm.weight",
                           "classifier.bias", "convnext.encoder.stages.0.layers.0.pwconv2.bias",
                           "convnextv2.encoder.stages.0.layers.0.grn.bias", "convnextv2.layernorm.weight"})
    EXPECT_FALSE(train::trainer_decays(name)) << name;
}

// clip_grad_norm_: the norm before clipping is returned, the gradients scaled by max/(norm + 1e-6).
TEST(TrainOptimizer, ClippingByGlobalNorm) {
  // clip_grad_norm_'s factor, and the trainer's fused step (AdamW reading g·factor, then zeroing
  // g) against clipping first and stepping after, as torch runs them: the same parameters, bit for bit.
  REQUIRE_FIXTURES();
  auto fused_net = load_trainable(fixture("train_tiny4")), plain_net = load_trainable(fixture("train_tiny4"));
  train::Gradients fused(*fused_net), plain(*plain_net);
  for (train::Gradients* g : {&fused, &plain})
    for (size_t i = 0; i < g->grads.size(); ++i)
      for (int64_t k = 0; k < g->grads[i].numel(); ++k) g->grads[i][k] = static_cast<float>((k % 7) - 3) * 0.01f;
  const double norm = plain.global_norm();
  EXPECT_EQ(train::clip_coefficient(norm, 0.0), 1.0f);        // 0 disables
  EXPECT_EQ(train::clip_coefficient(norm, 10 * norm), 1.0f);  // under the bound: unchanged
  const float coef = train::clip_coefficient(norm, 0.25 * norm);
  EXPECT_EQ(coef, static_cast<float>(0.25 * norm / (norm + 1e-6)));
  for (Tensor& g : plain.grads)  // clip_grad_norm_: g.mul_(coef)
    for (int64_t k = 0; k < g.numel(); ++k) g[k] *= coef;
  double clipped = 0;
  for (const Tensor& g : plain.grads)
    for (int64_t k = 0; k < g.numel(); ++k) clipped += static_cast<double>(g[k]) * g[k];
  EXPECT_NEAR(std::sqrt(clipped), 0.25 * norm, 1e-5 * norm);
  train::AdamWOptions o;
  o.lr = 1e-3;
  o.weight_decay = 0.01;
  train::AdamW fused_opt(fused, o), plain_opt(plain, o);
  plain_opt.step(plain, o.lr);
  fused_opt.step(fused, o.lr, coef, /*zero_grads=*/true);
  for (size_t i = 0; i < fused.grads.size(); ++i) {
    EXPECT_TRUE(std::equal(fused.params[i]->data(), fused.params[i]->data() + fused.params[i]->numel(), plain.params[i]->data()))
        << fused.names[i];
    EXPECT_TRUE(std::all_of(fused.grads[i].data(), fused.grads[i].data() + fused.grads[i].numel(), [](float v) { return v == 0.0f; }))
        << fused.names[i] << " not zeroed";
  }
}

// Two micro-batches of 2 with loss scale 1/2 give the gradient of the batch of 4 (mean losses over
// equal halves), as gradient accumulation must.
TEST(TrainOptimizer, AccumulationEqualsTheWholeBatch) {
  REQUIRE_FIXTURES();
  const std::string dir = fixture("train_tiny4");
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  const Tensor px = e->get_f32("pixel_values");
  const auto ids = e->get_i64("labels");
  auto net = load_trainable(dir);
  train::Gradients whole(*net), parts(*net);
  train::TrainGraph graph(*net, kernels::default_context());
  graph.forward_backward(px, Labels::classes(ids), whole);
  const int64_t per = px.numel() / 4;
  for (int h = 0; h < 2; ++h) {
    Tensor half({2, px.dim(1), px.dim(2), px.dim(3)});
    std::copy(px.data() + h * 2 * per, px.data() + (h + 1) * 2 * per, half.data());
    train::StepOptions half_scale;
    half_scale.loss_scale = 0.5f;
    graph.forward_backward(half, Labels::classes({ids[2 * h], ids[2 * h + 1]}), parts, half_scale);
  }
  for (size_t i = 0; i < whole.grads.size(); ++i)
    EXPECT_TRUE(close(parts.grads[i], whole.grads[i], 1e-5)) << whole.names[i];
}

// Stochastic depth in training mode: with drop_path_rate > 0 the same per-sample seeds give the
// same gradients, other seeds others.
TEST(TrainOptimizer, StochasticDepthIsSeeded) {
  REQUIRE_FIXTURES();
  const std::string dir = fixture("train_tiny4");
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  net->config.drop_path_rate = 0.5;
  train::TrainGraph graph(*net, kernels::default_context());
  auto grads_with = [&](uint64_t seed) {
    train::Gradients g(*net);
    const Tensor px = e->get_f32("pixel_values");
    std::vector<uint64_t> seeds;
    for (int64_t n = 0; n < px.dim(0); ++n) seeds.push_back(seed * 1000 + static_cast<uint64_t>(n));
    train::StepOptions so;
    so.sample_seeds = &seeds;
    graph.forward_backward(px, labels_in(*e), g, so);
    return g.grads;
  };
  const auto a = grads_with(1), b = grads_with(1), c = grads_with(2);
  double diff_ab = 0, diff_ac = 0;
  for (size_t i = 0; i < a.size(); ++i)
    for (int64_t k = 0; k < a[i].numel(); ++k) {
      diff_ab = std::max(diff_ab, static_cast<double>(std::fabs(a[i][k] - b[i][k])));
      diff_ac = std::max(diff_ac, static_cast<double>(std::fabs(a[i][k] - c[i][k])));
    }
  EXPECT_EQ(diff_ab, 0.0);
  EXPECT_GT(diff_ac, 0.0);
}

// Variants written by make_train_variants.py into the build tree (ctest runs the generator first).
std::vector<std::string> train_variants() {
  std::vector<std::string> dirs;
  const fs::path root = fs::path(CONVNEXT_GENERATED_DIR) / "train";
  if (!fs::exists(root)) return dirs;
  for (const auto& d : fs::directory_iterator(root))
    if (fs::exists(d.path() / "expected.safetensors")) dirs.push_back(d.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

TEST(TrainVariants, GradientsAndAdamW) {
  const auto dirs = train_variants();
  if (dirs.empty()) GTEST_SKIP() << "no generated training variants (ctest -R generate_train_variants needs python3-torch)";
  EXPECT_GE(dirs.size(), 10u);
  // ConvNeXt V2: the gradients through GRN (grn.weight and grn.bias among them) against autograd.
  EXPECT_GE(std::count_if(dirs.begin(), dirs.end(), [](const std::string& d) { return fs::path(d).filename().string().starts_with("v2_"); }), 2);
  // bf16 mixed precision (V1 and V2) against the twin's bf16 (every GEMM's inputs rounded): the
  // gradients at fp32's tolerance.
  EXPECT_GE(std::count_if(dirs.begin(), dirs.end(), [](const std::string& d) { return dtype_of(d) == DType::BF16; }), 2);
  for (const auto& d : dirs) {
    SCOPED_TRACE(d);
    check_gradients(d);
    check_adamw(d);
  }
}

}  // namespace
}  // namespace convnext::test
