// Training against transformers: gradients of one forward/backward and the parameters after 1
// and 3 AdamW steps, on the shared training fixtures (transformers 5.17 / torch) and on the
// variants tests/reference/make_train_variants.py generates (other activations, no layer
// scale, one input channel, regression, deeper nets, ignore_index, odd widths).
#include <filesystem>

#include "convnext/convnext.h"
#include "io/safetensors.h"
#include "model/network.h"
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

std::shared_ptr<detail::Network> load_trainable(const std::string& dir) {
  LoadOptions o;
  o.inference_only = false;
  return detail::Network::load(dir, o, Architecture::ForImageClassification);
}

// Gradient of the mean loss w.r.t. every parameter and pixel_values: within 1e-3·max(1, max|ref|).
void check_gradients(const std::string& dir) {
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  train::Gradients g(*net);
  train::TrainGraph graph(*net);
  Tensor dpx;
  const auto r = graph.forward_backward(e->get_f32("pixel_values"), labels_in(*e), g, 1.0f, nullptr, &dpx);
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
void check_adamw(const std::string& dir) {
  auto e = io::SafetensorsFile::open(dir + "/expected.safetensors");
  auto net = load_trainable(dir);
  train::Gradients g(*net);
  train::TrainGraph graph(*net);
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
    EXPECT_NEAR(r.loss, losses[step - 1], 2e-5 * std::max(1.0f, std::fabs(losses[step - 1]))) << dir << " step " << step;
    opt.step(g, train::scheduled_lr("constant", o.lr, step - 1, 0, 3));
    if (step == 1 || step == 3)
      for (size_t i = 0; i < g.names.size(); ++i) {
        const std::string key = "step" + std::to_string(step) + "." + g.names[i];
        ASSERT_TRUE(e->contains(key)) << key;
        EXPECT_TRUE(close(*g.params[i], e->get_f32(key), 2e-5)) << dir << " " << key;
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
  EXPECT_GE(dirs.size(), 8u);
  for (const auto& d : dirs) {
    SCOPED_TRACE(d);
    check_gradients(d);
    check_adamw(d);
  }
}

}  // namespace
}  // namespace convnext::test
