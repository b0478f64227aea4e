// The training pass, layer by layer as modeling_convnext.py runs it, each step followed in the
// backward by its derivative (NHWC throughout, like the inference path):
//
//   embeddings  x = LN(patchify(px)·Wᵀ + b)               ← dW, db, dγ, dβ, (d px)
//   downsample  y = patchify(LN(x))·Wᵀ + b                 ← the same in reverse
//   block       d = dwconv7(x);  t = LN(d);  h = t·W1ᵀ + b1;  a = act(h);  z = a·W2ᵀ + b2
//               x' = x + drop(γ ⊙ z)                      ← every step's adjoint, residual adds
//   head        p = LN(mean_hw(x));  logits = p·Wcᵀ + bc   ← loss gradient enters here
//
// Unlike inference, nothing is folded: LayerNorm's affine and the layer scale have their own
// gradients. The embeddings, downsampling layers and head run the very functions inference runs
// (model/layers.h), keeping what their backward needs; the block runs unfolded step by step. Weights are packed for the GEMMs at every call (they change at every step); the
// packs cost O(parameters), the GEMMs O(pixels × parameters).
#include "core/parallel.h"
#include "train/backprop.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "convnext/error.h"
#include "kernels/kernels.h"
#include "model/layers.h"
#include "train/data.h"  // sampling

namespace convnext::train {

using detail::BlockParams;
using detail::kBlockEps;
using detail::LayerNormSaved;
using detail::Parameters;
using detail::StageParams;
using kernels::Context;
using kernels::PackedLinear;

namespace {

float* grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// A linear layer's weight [N][K] packed both ways: for y = x·Wᵀ and for dx = dy·W. Repacked
// every step (the weights change), into the same storage.
struct LinearPacks {
  PackedLinear fwd, bwd;
  void pack(const Context& ctx, const float* W, const float* b, int64_t N, int64_t K) {
    kernels::pack_linear_into(ctx, W, b, N, K, fwd);
    kernels::pack_kn_into(ctx, W, K, N, K, bwd);
  }
};

// dW[N][K] += dyᵀ·x over M rows (dy [M][N], x [M][K]); x is packed into `xp`, a buffer reused
// from call to call.
void weight_grad(const Context& ctx, const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dW,
                 PackedLinear& xp) {
  kernels::pack_kn_into(ctx, x, K, M, K, xp);
  kernels::linear_at(ctx, N, dy, N, xp, dW, K, /*accumulate=*/true);
}

// The per-sample factor of stochastic depth (mask / keep_prob), 1 when off.
std::vector<float> drop_scales(int64_t N, float rate, std::mt19937_64* rng) {
  std::vector<float> s(static_cast<size_t>(N), 1.0f);
  if (rate <= 0.0f || !rng) return s;
  const float keep = 1.0f - rate;
  for (auto& v : s)  // as drop_path: floor(keep + U[0,1)) / keep
    v = std::floor(keep + static_cast<float>(sampling::uniform01(*rng))) / keep;
  return s;
}

}  // namespace

// ---- Gradients -------------------------------------------------------------------------------

Gradients::Gradients(Parameters& model) {
  model.for_each_parameter([&](const std::string& name, Tensor& t) {
    if (t.empty()) throw Error("parameter " + name + " was released (load the model with inference_only = false to train it)");
    index_[t.data()] = names.size();
    names.push_back(name);
    params.push_back(&t);
    grads.emplace_back(t.shape());
  });
}

Tensor& Gradients::of(const Tensor& param) {
  const auto it = index_.find(param.data());
  if (it == index_.end()) throw Error("internal: gradient of an unknown parameter");
  return grads[it->second];
}

void Gradients::zero() {
  for (Tensor& g : grads) std::fill(g.data(), g.data() + g.numel(), 0.0f);
}

double Gradients::global_norm() const {
  double s = 0;
  for (const Tensor& g : grads)
    for (int64_t i = 0; i < g.numel(); ++i) s += static_cast<double>(g[i]) * g[i];
  return std::sqrt(s);
}

void Gradients::scale(float f) {
  for (Tensor& g : grads)
    for (int64_t i = 0; i < g.numel(); ++i) g[i] *= f;
}

std::vector<float> drop_path_rates(const ConvNextConfig& config) {
  int64_t total = 0;
  for (int64_t d : config.depths) total += d;
  std::vector<float> r(static_cast<size_t>(total), 0.0f);
  const float end = static_cast<float>(config.drop_path_rate);
  // torch.linspace(0, end, n) in float32: start + i·step for the first half, end − (n−1−i)·step after.
  if (total > 1) {
    const float step = end / static_cast<float>(total - 1);
    const int64_t half = total / 2;
    for (int64_t i = 0; i < total; ++i)
      r[static_cast<size_t>(i)] = i < half ? step * static_cast<float>(i) : end - step * static_cast<float>(total - 1 - i);
  }
  return r;
}

// ---- TrainGraph ------------------------------------------------------------------------------

struct TrainGraph::Impl {
  Parameters& net;
  Context ctx;
  // Saved activations, one entry per map / block, grown as inputs need.
  struct BlockState {
    std::vector<float> xhat, rstd, h, a, z;
    std::vector<float> scale;  // per sample
  };
  struct DownState {
    std::vector<float> t, xhat, rstd;
  };
  std::vector<std::vector<float>> maps;  // maps[i]: input of layer i (stem output first)
  std::vector<BlockState> blocks;
  std::vector<DownState> downs;
  std::vector<float> stem_xhat, stem_rstd, head_xhat, head_rstd, pooled, pooled_normed;
  // Scratch.
  std::vector<float> patches, s1, s2, s3, g, dpatch, dlin;
  // Packed weights and weight_grad's packed x: buffers kept from step to step, so a step
  // allocates (and page-faults) nothing once the first one has run.
  LinearPacks stem, cls;
  std::vector<LinearPacks> down_packs, pw1, pw2;
  std::vector<std::vector<float>> taps;
  PackedLinear xpack;

  Impl(Parameters& n, const Context& c) : net(n), ctx(c) {}
};

TrainGraph::TrainGraph(Parameters& net, const Context& ctx) : impl_(std::make_unique<Impl>(net, ctx)) {
  if (net.arch != Architecture::ForImageClassification)
    throw Error("training needs a ConvNextForImageClassification model");
  if (net.config.num_labels() < 1) throw Error("training needs num_labels >= 1 (the model has no classifier)");
}
TrainGraph::~TrainGraph() = default;

TrainGraph::Result TrainGraph::forward_backward(const Tensor& px, const Labels& labels, Gradients& grads,
                                                float loss_scale, std::mt19937_64* rng, Tensor* grad_pixels) {
  Impl& m = *impl_;
  Parameters& net = m.net;
  const Context& ctx = m.ctx;
  const ConvNextConfig& cfg = net.config;
  detail::check_pixel_values(cfg, px);
  const int64_t N = px.dim(0), Cin = cfg.num_channels, p = cfg.patch_size, Hin = px.dim(2), Win = px.dim(3);
  const Activation act = net.act;
  const std::vector<float> rates = drop_path_rates(cfg);

  // Geometry of every map.
  struct Geo {
    int64_t H, W, C;
  };
  std::vector<Geo> geo;  // per map
  int64_t H = Hin / p, W = Win / p;
  geo.push_back({H, W, cfg.hidden_sizes[0]});
  for (const StageParams& st : net.stages) {
    if (st.has_downsample) {
      H /= 2;
      W /= 2;
      geo.push_back({H, W, st.out_channels});
    }
    for (size_t j = 0; j < st.blocks.size(); ++j) geo.push_back({H, W, st.out_channels});
  }
  m.maps.resize(geo.size());
  size_t nblocks = 0, ndowns = 0;
  for (const StageParams& st : net.stages) {
    nblocks += st.blocks.size();
    ndowns += st.has_downsample ? 1 : 0;
  }
  m.blocks.resize(nblocks);
  m.downs.resize(ndowns);
  auto rows_of = [&](size_t i) { return N * geo[i].H * geo[i].W; };

  // ---------------- forward ----------------
  const int64_t C0 = cfg.hidden_sizes[0], M0 = rows_of(0), Kp = p * p * Cin;
  LinearPacks& stem = m.stem;
  const std::vector<float> stem_lin = kernels::conv_weight_to_patch_linear(net.patch_weight.data(), C0, Cin, p);
  stem.pack(ctx, stem_lin.data(), net.patch_bias.data(), C0, Kp);
  const LayerNormSaved stem_saved{grow(m.stem_xhat, M0 * C0), grow(m.stem_rstd, M0)};
  detail::embeddings(ctx, px.data(), N, Cin, Hin, Win, p, stem.fwd, net.embed_norm.weight.data(),
                     net.embed_norm.bias.data(), grow(m.patches, M0 * Kp), grow(m.maps[0], M0 * C0), &stem_saved);

  m.down_packs.resize(ndowns);
  m.pw1.resize(nblocks);
  m.pw2.resize(nblocks);
  m.taps.resize(nblocks);
  std::vector<LinearPacks>&down_packs = m.down_packs, &pw1 = m.pw1, &pw2 = m.pw2;
  std::vector<std::vector<float>>& taps = m.taps;
  size_t mi = 0, bi = 0, di = 0;
  for (StageParams& st : net.stages) {
    if (st.has_downsample) {
      // LayerNorm, then the 2×2 stride-2 conv as a GEMM over the patches of the normalised map.
      Impl::DownState& ds = m.downs[di];
      const Geo gi = geo[mi], go = geo[mi + 1];
      const int64_t Mi = rows_of(mi), Mo = rows_of(mi + 1), K = 4 * gi.C;
      const std::vector<float> lin = kernels::conv_weight_to_patch_linear(st.down_weight.data(), go.C, gi.C, 2);
      down_packs[di].pack(ctx, lin.data(), st.down_bias.data(), go.C, K);
      const LayerNormSaved saved{grow(ds.xhat, Mi * gi.C), grow(ds.rstd, Mi)};
      detail::downsample(ctx, m.maps[mi].data(), {N, gi.H, gi.W, gi.C}, st.down_norm.weight.data(),
                         st.down_norm.bias.data(), down_packs[di].fwd, grow(ds.t, Mi * gi.C), grow(m.patches, Mo * K),
                         grow(m.maps[mi + 1], Mo * go.C), &saved);
      ++di;
      ++mi;
    }
    for (BlockParams& b : st.blocks) {
      Impl::BlockState& bs = m.blocks[bi];
      const Geo gg = geo[mi];
      const int64_t M = rows_of(mi), C = gg.C, C4 = 4 * C;
      const float* x = m.maps[mi].data();
      taps[bi].resize(static_cast<size_t>(49 * C));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t t = 0; t < 49; ++t) taps[bi][static_cast<size_t>(t * C + c)] = b.dw_weight[c * 49 + t];
      pw1[bi].pack(ctx, b.pw1_weight.data(), b.pw1_bias.data(), C4, C);
      pw2[bi].pack(ctx, b.pw2_weight.data(), b.pw2_bias.data(), C, C4);
      float* d = grow(m.s1, M * C);
      kernels::dwconv7(ctx, x, N, gg.H, gg.W, C, taps[bi].data(), b.dw_bias.data(), d);
      float* t = grow(m.s2, M * C);
      kernels::layer_norm_train(ctx, d, M, C, b.norm.weight.data(), b.norm.bias.data(), kBlockEps, t, grow(bs.xhat, M * C),
                                grow(bs.rstd, M));
      float* h = grow(bs.h, M * C4);
      kernels::linear(ctx, M, t, C, pw1[bi].fwd, h, C4, false, Activation::Linear);
      float* a = grow(bs.a, M * C4);
      kernels::activation_out(ctx, act, h, a, M * C4);
      float* z = grow(bs.z, M * C);
      kernels::linear(ctx, M, a, C4, pw2[bi].fwd, z, C, false, Activation::Linear);
      // x' = x + drop_path(γ ⊙ z), drop_path scaling whole samples by mask / keep_prob.
      bs.scale = drop_scales(N, rates[bi], rng);
      float* y = grow(m.maps[mi + 1], M * C);
      const float* ls = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
      const int64_t per = M / N;
      const float* scale = bs.scale.data();
      parallel::for_each(M, ctx.threads, M * C > 32768, [&](int64_t r) {
        const float sc = scale[r / per];
        for (int64_t c = 0; c < C; ++c) y[r * C + c] = x[r * C + c] + sc * ((ls ? ls[c] : 1.0f) * z[r * C + c]);
      });
      ++bi;
      ++mi;
    }
  }

  // Head: mean over H, W, final LayerNorm, classifier.
  const size_t last = mi;
  const int64_t CL = geo[last].C, HW = geo[last].H * geo[last].W, L = cfg.num_labels();
  kernels::mean_pool(m.maps[last].data(), N, HW, CL, grow(m.pooled, N * CL));
  LinearPacks& cls = m.cls;
  cls.pack(ctx, net.classifier_weight.data(), net.classifier_bias.data(), L, CL);
  Result r;
  r.logits = Tensor({N, L});
  const LayerNormSaved head_saved{grow(m.head_xhat, N * CL), grow(m.head_rstd, N)};
  detail::classifier_head(ctx, m.pooled.data(), N, CL, net.final_norm.weight.data(), net.final_norm.bias.data(),
                          static_cast<float>(cfg.layer_norm_eps), &cls.fwd, grow(m.pooled_normed, N * CL),
                          r.logits.data(), &head_saved);
  r.problem_type = cfg.problem_type.value_or("");
  Tensor dlogits;
  r.loss = loss_and_grad(r.logits, labels, r.problem_type, dlogits);
  if (loss_scale != 1.0f)
    for (int64_t i = 0; i < dlogits.numel(); ++i) dlogits[i] *= loss_scale;

  // ---------------- backward ----------------
  weight_grad(ctx, dlogits.data(), m.pooled_normed.data(), N, L, CL, grads.of(net.classifier_weight).data(), m.xpack);
  kernels::column_sums(ctx, dlogits.data(), N, L, grads.of(net.classifier_bias).data());
  std::vector<float> dp(static_cast<size_t>(N * CL));
  kernels::linear(ctx, N, dlogits.data(), L, cls.bwd, dp.data(), CL, false, Activation::Linear);
  kernels::layer_norm_backward(ctx, dp.data(), m.head_xhat.data(), m.head_rstd.data(), N, CL, net.final_norm.weight.data(),
                               dp.data(), grads.of(net.final_norm.weight).data(), grads.of(net.final_norm.bias).data());
  // The mean over H·W hands each pixel 1/HW of the pooled gradient.
  float* G = grow(m.g, rows_of(last) * CL);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t q = 0; q < HW; ++q)
      for (int64_t c = 0; c < CL; ++c) G[(n * HW + q) * CL + c] = dp[static_cast<size_t>(n * CL + c)] / static_cast<float>(HW);

  for (size_t s = net.stages.size(); s-- > 0;) {
    StageParams& st = net.stages[s];
    for (size_t j = st.blocks.size(); j-- > 0;) {
      --bi;
      --mi;
      BlockParams& b = st.blocks[j];
      Impl::BlockState& bs = m.blocks[bi];
      const Geo gg = geo[mi];
      const int64_t M = rows_of(mi), C = gg.C, C4 = 4 * C, per = M / N;
      const float* x = m.maps[mi].data();
      // G is d loss / d x'. The residual passes it to x unchanged; the branch gets G·scale_n.
      float* dz = grow(m.s1, M * C);
      const float* ls = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
      float* dls = ls ? grads.of(b.layer_scale).data() : nullptr;
      // d γ = Σ (G·scale)·z: the product goes through dz, summed by column_sums.
      const float* scale = bs.scale.data();
      if (ls) {
        parallel::for_each(M, ctx.threads, M * C > 32768, [&](int64_t r) {
          for (int64_t c = 0; c < C; ++c) dz[r * C + c] = G[r * C + c] * scale[r / per] * bs.z[static_cast<size_t>(r * C + c)];
        });
        kernels::column_sums(ctx, dz, M, C, dls);
      }
      parallel::for_each(M, ctx.threads, M * C > 32768, [&](int64_t r) {
        for (int64_t c = 0; c < C; ++c) dz[r * C + c] = G[r * C + c] * scale[r / per] * (ls ? ls[c] : 1.0f);
      });
      // pwconv2: dW2 += dzᵀ·a, da = dz·W2.
      weight_grad(ctx, dz, bs.a.data(), M, C, C4, grads.of(b.pw2_weight).data(), m.xpack);
      kernels::column_sums(ctx, dz, M, C, grads.of(b.pw2_bias).data());
      float* dh = grow(m.s3, M * C4);
      kernels::linear(ctx, M, dz, C, pw2[bi].bwd, dh, C4, false, Activation::Linear);
      kernels::activation_backward(ctx, act, bs.h.data(), dh, dh, M * C4);
      // pwconv1: t = x̂·γ + β again, dW1 += dhᵀ·t, dt = dh·W1.
      float* t = grow(m.s2, M * C);
      const float* gam = b.norm.weight.data();
      const float* bet = b.norm.bias.data();
      parallel::for_each(M, ctx.threads, M * C > 32768, [&](int64_t r) {
        for (int64_t c = 0; c < C; ++c) t[r * C + c] = bs.xhat[static_cast<size_t>(r * C + c)] * gam[c] + bet[c];
      });
      weight_grad(ctx, dh, t, M, C4, C, grads.of(b.pw1_weight).data(), m.xpack);
      kernels::column_sums(ctx, dh, M, C4, grads.of(b.pw1_bias).data());
      float* dt = t;
      kernels::linear(ctx, M, dh, C4, pw1[bi].bwd, dt, C, false, Activation::Linear);
      kernels::layer_norm_backward(ctx, dt, bs.xhat.data(), bs.rstd.data(), M, C, gam, dt, grads.of(b.norm.weight).data(),
                                   grads.of(b.norm.bias).data());
      // Depthwise conv: its input gradient joins the residual's.
      float* dx = dz;  // dz is no longer needed
      std::vector<float> dw49(static_cast<size_t>(49 * C), 0.0f);
      kernels::dwconv7_backward(ctx, x, dt, N, gg.H, gg.W, C, taps[bi].data(), dx, dw49.data(), grads.of(b.dw_bias).data());
      float* gdw = grads.of(b.dw_weight).data();
      for (int64_t c = 0; c < C; ++c)
        for (int64_t tp = 0; tp < 49; ++tp) gdw[c * 49 + tp] += dw49[static_cast<size_t>(tp * C + c)];
      parallel::for_each(M * C, ctx.threads, M * C > 32768, [&](int64_t i) {
        G[i] += dx[i];
      });
    }
    if (st.has_downsample) {
      --di;
      --mi;
      Impl::DownState& ds = m.downs[di];
      const Geo gi = geo[mi], go = geo[mi + 1];
      const int64_t Mi = rows_of(mi), Mo = rows_of(mi + 1), K = 4 * gi.C;
      kernels::patchify_nhwc(ctx, ds.t.data(), N, gi.H, gi.W, gi.C, 2, grow(m.patches, Mo * K));
      std::vector<float> dlin(static_cast<size_t>(go.C * K), 0.0f);
      weight_grad(ctx, G, m.patches.data(), Mo, go.C, K, dlin.data(), m.xpack);
      kernels::patch_linear_to_conv_weight_add(dlin.data(), go.C, gi.C, 2, grads.of(st.down_weight).data());
      kernels::column_sums(ctx, G, Mo, go.C, grads.of(st.down_bias).data());
      float* dpatch = grow(m.dpatch, Mo * K);
      kernels::linear(ctx, Mo, G, go.C, down_packs[di].bwd, dpatch, K, false, Activation::Linear);
      float* dt = grow(m.s1, Mi * gi.C);
      kernels::unpatchify_nhwc(ctx, dpatch, N, gi.H, gi.W, gi.C, 2, dt);
      G = grow(m.g, Mi * gi.C);  // the same buffer, now for the larger map (G's old values are consumed)
      kernels::layer_norm_backward(ctx, dt, ds.xhat.data(), ds.rstd.data(), Mi, gi.C, st.down_norm.weight.data(), G,
                                   grads.of(st.down_norm.weight).data(), grads.of(st.down_norm.bias).data());
    }
  }

  // Embeddings.
  float* dy0 = grow(m.s1, M0 * C0);
  kernels::layer_norm_backward(ctx, G, m.stem_xhat.data(), m.stem_rstd.data(), M0, C0, net.embed_norm.weight.data(), dy0,
                               grads.of(net.embed_norm.weight).data(), grads.of(net.embed_norm.bias).data());
  kernels::patchify_nchw(ctx, px.data(), N, Cin, Hin, Win, p, grow(m.patches, M0 * Kp));
  std::vector<float> dlin(static_cast<size_t>(C0 * Kp), 0.0f);
  weight_grad(ctx, dy0, m.patches.data(), M0, C0, Kp, dlin.data(), m.xpack);
  kernels::patch_linear_to_conv_weight_add(dlin.data(), C0, Cin, p, grads.of(net.patch_weight).data());
  kernels::column_sums(ctx, dy0, M0, C0, grads.of(net.patch_bias).data());
  if (grad_pixels) {
    float* dpatch = grow(m.dpatch, M0 * Kp);
    kernels::linear(ctx, M0, dy0, C0, stem.bwd, dpatch, Kp, false, Activation::Linear);
    *grad_pixels = Tensor({N, Cin, Hin, Win});
    kernels::unpatchify_nchw(ctx, dpatch, N, Cin, Hin, Win, p, grad_pixels->data());
  }
  return r;
}

}  // namespace convnext::train
