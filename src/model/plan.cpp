// Building an inference plan from the parameters (packing, folding), resolving an execution
// context, and the model state that holds both.
#include "model/plan.h"

#include <algorithm>

#include "convnext/error.h"
#include "core/cpu.h"
#include "core/parallel.h"

namespace convnext::detail {

namespace {

NormPlan copy_norm(const LayerNormParams& p) {
  return {std::vector<float>(p.weight.data(), p.weight.data() + p.weight.numel()),
          std::vector<float>(p.bias.data(), p.bias.data() + p.bias.numel())};
}

std::vector<float> copy_vector(const Tensor& t) { return std::vector<float>(t.data(), t.data() + t.numel()); }

// The depthwise weight [C,1,7,7] as taps [49][C]: each tap's C weights contiguous, as the kernel
// reads them beside a pixel's C channels.
std::vector<float> dw_taps(const Tensor& w, int64_t C) {
  std::vector<float> taps(static_cast<size_t>(49 * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < 49; ++t) taps[static_cast<size_t>(t * C + c)] = w[c * 49 + t];
  return taps;
}

// The pointwise weights in the plan's dtype: fp32, bf16 pairs, or int8 per output channel.
kernels::PackedLinear pack_pointwise(const kernels::Context& ctx, DType d, const float* W, const float* row_scale,
                                     const float* col_scale, const float* bias, int64_t N, int64_t K) {
  if (d == DType::I8) return kernels::pack_linear_int8(ctx, W, row_scale, col_scale, bias, N, K);
  return kernels::pack_linear_scaled(ctx, W, row_scale, col_scale, bias, N, K, d == DType::BF16);
}

BlockPlan pack_block(const kernels::Context& ctx, BlockParams& b, int64_t C, DType d, bool release) {
  const int64_t H4 = 4 * C;
  BlockPlan bp;
  bp.taps = dw_taps(b.dw_weight, C);
  bp.dw_bias = copy_vector(b.dw_bias);
  // LayerNorm folded into pwconv1: W·(γ⊙x̂ + β) + b = (W·diag γ)·x̂ + (b + W·β).
  std::vector<float> b1(static_cast<size_t>(H4));
  for (int64_t o = 0; o < H4; ++o) {
    double acc = b.pw1_bias[o];
    for (int64_t k = 0; k < C; ++k) acc += static_cast<double>(b.pw1_weight[o * C + k]) * b.norm.bias[k];
    b1[static_cast<size_t>(o)] = static_cast<float>(acc);
  }
  bp.pw1 = pack_pointwise(ctx, d, b.pw1_weight.data(), nullptr, b.norm.weight.data(), b1.data(), H4, C);
  if (release) release_tensor(b.pw1_weight);
  // Layer scale folded into pwconv2: γ ⊙ (W·h + b) = (diag γ·W)·h + γ⊙b.
  std::vector<float> b2(b.pw2_bias.data(), b.pw2_bias.data() + C);
  const float* gamma = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
  if (gamma)
    for (int64_t o = 0; o < C; ++o) b2[static_cast<size_t>(o)] *= gamma[o];
  bp.pw2 = pack_pointwise(ctx, d, b.pw2_weight.data(), gamma, nullptr, b2.data(), C, H4);
  if (release) {
    release_tensor(b.dw_weight);
    release_tensor(b.pw2_weight);
  }
  // GRN (V2) stays a step of its own: its scale depends on each image's statistics.
  if (!b.grn_weight.empty()) {
    bp.grn_gamma = copy_vector(b.grn_weight);
    bp.grn_beta = copy_vector(b.grn_bias);
  }
  return bp;
}

}  // namespace

InferencePlan::InferencePlan(Parameters& params, DType d, const kernels::Context& ctx, bool release)
    : config(params.config), arch(params.arch), act(params.act), dtype(d) {
  if (d == DType::F16)
    throw Error("f16 arithmetic is not supported: load with precision f32, bf16 or int8 (f16 is a storage format: "
                "save_pretrained, convert)");
  if (params.released)
    throw Error("this model's weights were released after packing (LoadOptions::inference_only): it cannot be packed "
                "for another dtype; load it with inference_only = false, or with the precision you need");
  // int8 covers the blocks' pointwise GEMMs (over 90% of the FLOPs); the downsampling layers, the
  // stem and the head stay fp32. (Downsampling in int8 was measured: 6% faster at ConvNeXt-T batch
  // 8, and twice the logit error on the random-weight fixtures, 0.010 → 0.021: not worth it.)
  const bool bf16 = d == DType::BF16;
  const int64_t p = config.patch_size;
  {
    const int64_t O = params.patch_weight.dim(0), C = params.patch_weight.dim(1);
    const auto w = kernels::conv_weight_to_patch_linear(params.patch_weight.data(), O, C, p);
    patch = kernels::pack_linear(ctx, w.data(), params.patch_bias.data(), O, p * p * C);
    if (release) release_tensor(params.patch_weight);
  }
  embed_norm = copy_norm(params.embed_norm);
  for (StageParams& st : params.stages) {
    StagePlan sp;
    sp.in_channels = st.in_channels;
    sp.out_channels = st.out_channels;
    sp.has_downsample = st.has_downsample;
    if (st.has_downsample) {
      sp.down_norm = copy_norm(st.down_norm);
      const auto w = kernels::conv_weight_to_patch_linear(st.down_weight.data(), st.out_channels, st.in_channels, 2);
      sp.down = kernels::pack_linear_scaled(ctx, w.data(), nullptr, nullptr, st.down_bias.data(), st.out_channels,
                                            4 * st.in_channels, bf16);
      if (release) release_tensor(st.down_weight);
    }
    for (BlockParams& b : st.blocks) sp.blocks.push_back(pack_block(ctx, b, st.out_channels, d, release));
    stages.push_back(std::move(sp));
  }
  if (!params.final_norm.weight.empty()) final_norm = copy_norm(params.final_norm);
  for (const LayerNormParams& n : params.backbone_norms) backbone_norms.push_back(copy_norm(n));
  if (!params.classifier_weight.empty())
    classifier = kernels::pack_linear(ctx, params.classifier_weight.data(), params.classifier_bias.data(),
                                      params.classifier_weight.dim(0), params.classifier_weight.dim(1));
  if (release) params.released = true;
}

Exec resolve(const ExecutionContext& ctx) {
  if (ctx.threads < 0 || ctx.threads > 1024)
    throw Error("ExecutionContext::threads must be 0 (automatic) or 1 … 1024, got " + std::to_string(ctx.threads));
  Exec ex;
  ex.kernels.threads = ctx.threads > 0 ? ctx.threads : parallel::max_threads();
  switch (ctx.kernels) {
    case KernelFamily::Auto: ex.kernels.family = kernels::selected_family(); break;
    case KernelFamily::Portable: ex.kernels.family = kernels::Family::Portable; break;
    case KernelFamily::Avx512:
      if (!cpu_has_avx512()) throw Error("ExecutionContext::kernels is Avx512 but this CPU has no AVX-512");
      ex.kernels.family = kernels::Family::Avx512;
      break;
  }
  ex.contended = parallel::contended();
  ex.profile = ctx.profile;
  return ex;
}

// ---- ModelState ----

std::shared_ptr<ModelState> ModelState::load(const std::string& path, const LoadOptions& options, Architecture arch) {
  auto m = std::make_shared<ModelState>();
  const kernels::Context ctx = kernels::default_context();
  // Packed while the checkpoint is open, each weight matrix released as soon as it is packed.
  m->params_ = Parameters::load(path, options, arch, [&](Parameters& p) {
    m->plan_ = std::make_shared<const InferencePlan>(p, options.precision, ctx, options.inference_only);
  });
  m->plan_->reserve_default_workspace(ctx.threads);
  return m;
}

std::shared_ptr<ModelState> ModelState::fresh(const ConvNextConfig& config, uint64_t seed, Architecture arch,
                                              bool inference_only, DType precision) {
  auto m = std::make_shared<ModelState>();
  ConvNextConfig c = config;
  c.architectures = {architecture_name(arch, c.is_v2())};
  m->params_ = std::make_shared<Parameters>(c, arch);
  m->params_->init_weights(seed);
  const kernels::Context ctx = kernels::default_context();
  m->plan_ = std::make_shared<const InferencePlan>(*m->params_, precision, ctx, inference_only);
  m->plan_->reserve_default_workspace(ctx.threads);
  return m;
}

std::shared_ptr<const InferencePlan> ModelState::plan(std::optional<DType> dtype) const {
  if (!dtype || *dtype == plan_->dtype) return plan_;
  std::lock_guard<std::mutex> lock(others_mutex_);
  for (const auto& p : others_)
    if (p->dtype == *dtype) return p;
  if (params_->released)
    throw Error(std::string("this model was loaded for inference in ") + dtype_short_name(plan_->dtype) +
                " only (LoadOptions::inference_only released its weights): load it with precision " +
                dtype_short_name(*dtype) + ", or with inference_only = false to switch dtypes per call");
  others_.push_back(std::make_shared<const InferencePlan>(*params_, *dtype, kernels::default_context(), false));
  return others_.back();
}

void ModelState::repack() {
  const kernels::Context ctx = kernels::default_context();
  plan_ = std::make_shared<const InferencePlan>(*params_, plan_->dtype, ctx, false);
  std::lock_guard<std::mutex> lock(others_mutex_);
  others_.clear();
}

}  // namespace convnext::detail

namespace convnext {

std::string kernel_family_name(KernelFamily family) {
  ExecutionContext ctx;
  ctx.kernels = family;
  return kernels::family_name(detail::resolve(ctx).kernels.family);
}

}  // namespace convnext
