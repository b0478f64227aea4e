// The training pass, layer by layer as modeling_convnext.py runs it, each step followed in the
// backward by its derivative (NHWC throughout, like the inference path):
//
//   embeddings  x = LN(patchify(px)·Wᵀ + b)               ← dW, db, dγ, dβ, (d px)
//   downsample  y = patchify(LN(x))·Wᵀ + b                 ← the same in reverse
//   block       d = dwconv7(x);  t = LN(d);  h = t·W1ᵀ + b1;  a = act(h);  z = a·W2ᵀ + b2
//               x' = x + drop(γ ⊙ z)                      ← every step's adjoint, residual adds
//   V2 block    the same with g = GRN(a) between act and pwconv2 (z = g·W2ᵀ + b2) and no γ;
//               g is recomputed from a in the backward rather than kept
//   head        p = LN(mean_hw(x));  logits = p·Wcᵀ + bc   ← loss gradient enters here
//
// Unlike inference, nothing is folded: LayerNorm's affine and the layer scale have their own
// gradients. The embeddings, downsampling layers and head run the very functions inference runs
// (model/layers.h), keeping what their backward needs; the block runs unfolded step by step. Weights are packed for the GEMMs at every call (they change at every step); the
// packs cost O(parameters), the GEMMs O(pixels × parameters).
#include "core/parallel.h"
#include "model/part_timer.h"
#include "train/backprop.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "convnext/error.h"
#include "kernels/grn.h"
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

// The training pass's buffers start on 64-byte boundaries, and with ConvNeXt's widths (multiples
// of 16) so does every pixel's row: a vector load or store of 16 floats then touches one cache
// line, where plain malloc's 16-byte alignment split every one of them over two (the depthwise
// weight gradient alone ran 10-15% slower so, the GEMMs' output stores likewise).
using Buffer = kernels::AlignedVector<float>;

template <class T>
T* grow(kernels::AlignedVector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// A linear layer's weight [N][K] packed both ways: for y = x·Wᵀ and for dx = dy·W. Repacked
// every step (the weights change), into the same storage; in bf16 for bf16 training (the fp32
// weights stay the master copy).
struct LinearPacks {
  PackedLinear fwd, bwd;
  void pack(const Context& ctx, const float* W, const float* b, int64_t N, int64_t K, bool bf16) {
    kernels::pack_linear_into(ctx, W, b, N, K, fwd, bf16);
    kernels::pack_kn_into(ctx, W, K, N, K, bwd, bf16);
  }
};

// dW[N][K] += dyᵀ·x over M rows (dy [M][N], x [M][K]). bf16: both rounded to bf16, the sums over
// the M rows in fp32.
void weight_grad(const Context& ctx, const float* dy, const float* x, int64_t M, int64_t N, int64_t K, float* dW, bool bf16) {
  kernels::weight_gradient(ctx, M, dy, N, N, x, K, K, dW, bf16);
}

// The per-sample factor of stochastic depth in block `block` (mask / keep_prob, 1 when off), each
// sample's from its own seed.
std::vector<float> drop_scales(const std::vector<uint64_t>* seeds, int64_t N, size_t block, float rate) {
  std::vector<float> s(static_cast<size_t>(N), 1.0f);
  if (rate <= 0.0f || !seeds) return s;
  const float keep = 1.0f - rate;
  for (int64_t n = 0; n < N; ++n) {  // as drop_path: floor(keep + U[0,1)) / keep
    std::mt19937_64 rng((*seeds)[static_cast<size_t>(n)] ^ (0x9E3779B97F4A7C15ull * (block + 1)));
    s[static_cast<size_t>(n)] = std::floor(keep + static_cast<float>(sampling::uniform01(rng))) / keep;
  }
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

size_t Gradients::index_of(const Tensor& param) const {
  const auto it = index_.find(param.data());
  if (it == index_.end()) throw Error("internal: gradient of an unknown parameter");
  return it->second;
}

namespace {
// The gradients cut into fixed spans of at most kSpan values (the same spans on any thread count),
// so that the passes over every gradient of a step (zeroing, the norm, clipping) run on all
// threads: one pass over ConvNeXt-T's 28 M values took 3–4% of a training step on one thread.
constexpr int64_t kSpan = 1 << 16;
struct Span {
  float* data;
  int64_t n;
};
std::vector<Span> spans_of(const std::vector<Tensor>& grads) {
  std::vector<Span> spans;
  for (const Tensor& g : grads)
    for (int64_t i = 0; i < g.numel(); i += kSpan)
      spans.push_back({const_cast<float*>(g.data()) + i, std::min(kSpan, g.numel() - i)});
  return spans;
}
}  // namespace

void Gradients::zero() {
  const std::vector<Span> spans = spans_of(grads);
  parallel::for_each(static_cast<int64_t>(spans.size()), spans.size() > 4, [&](int64_t s) {
    std::fill(spans[static_cast<size_t>(s)].data, spans[static_cast<size_t>(s)].data + spans[static_cast<size_t>(s)].n, 0.0f);
  });
}

double Gradients::global_norm() const {
  // Σ g² in double: each span's sum (eight partial sums, so the adds do not wait on each other),
  // then the spans' sums in order, so the norm does not depend on the thread count.
  const std::vector<Span> spans = spans_of(grads);
  std::vector<double> sums(spans.size());
  parallel::for_each(static_cast<int64_t>(spans.size()), spans.size() > 4, [&](int64_t s) {
    const Span& sp = spans[static_cast<size_t>(s)];
    double acc[8] = {};
    int64_t i = 0;
    for (; i + 8 <= sp.n; i += 8)
      for (int j = 0; j < 8; ++j) acc[j] += static_cast<double>(sp.data[i + j]) * sp.data[i + j];
    for (; i < sp.n; ++i) acc[0] += static_cast<double>(sp.data[i]) * sp.data[i];
    sums[static_cast<size_t>(s)] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  });
  double total = 0;
  for (const double s : sums) total += s;
  return std::sqrt(total);
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

// One training pass's state: what each layer's backward needs, kept from its forward, and the
// buffers reused from step to step (so a step allocates, and page-faults, nothing once the first
// one has run). maps[i] is the input of layer i (the stem's output first); layers are walked in
// network order forward and in reverse backward, each with its index into maps.
struct TrainGraph::Impl {
  Parameters& net;
  Context ctx;
  bool bf16;  // the GEMMs' inputs in bf16 (mixed precision), everything else in fp32
  struct Geo {
    int64_t H, W, C;
  };
  struct BlockState {
    Buffer xhat, rstd, a, z;
    // bf16 training keeps a = act(h) in bf16 (V1): pwconv2 and dW2, its only readers, round it to
    // bf16 anyway, so the same bits in half the bytes (GRN, V2, needs it in fp32).
    kernels::AlignedVector<uint16_t> a16;
    kernels::AlignedVector<uint16_t> t16;  // … and t = LayerNorm(dwconv(x)), for pwconv1 and dW1
    Buffer dact;  // act'(h) of pwconv1's output h: all the backward needs of h
    kernels::AlignedVector<uint16_t> dact16;  // … in bf16 under bf16 training (V1)
    std::vector<float> scale;  // the per-sample factor of stochastic depth
  };
  struct DownState {
    Buffer t, xhat, rstd;
  };
  int64_t N = 0;
  std::vector<Geo> geo;                  // of every map
  std::vector<Buffer> maps;  // maps[i]: input of layer i
  std::vector<BlockState> blocks;
  std::vector<DownState> downs;
  Buffer stem_xhat, stem_rstd, head_xhat, head_rstd, pooled, pooled_normed;
  Buffer patches, s1, s2, s3, s4, g, dpatch;  // scratch
  Buffer lin, dlin, dw49, dpooled;             // small scratch (kept: nothing is allocated per step)
  LinearPacks stem, cls;                              // the weights packed both ways
  std::vector<LinearPacks> down_packs, pw1, pw2;
  std::vector<Buffer> taps;
  kernels::TileColumnSums db1;  // pwconv1's bias gradient, from the dh GEMM's tiles
  kernels::AlignedVector<uint16_t> dh16;  // bf16 training (V1): dh kept in bf16, as a16
  kernels::AlignedVector<uint16_t> dz16;  // … and dz (scratch, as s1)
  Buffer db1_step, pw1_part;

  Impl(Parameters& n, const Context& c, bool b) : net(n), ctx(c), bf16(b) {}
  // bf16 training keeps a block's act(h) and dh in bf16 (BlockState::a16, dh16); V2's GRN reads
  // act(h) in fp32.
  bool maps_in_bf16(const BlockParams& b) const { return bf16 && b.grn_weight.empty(); }
  int64_t rows(size_t map) const { return N * geo[map].H * geo[map].W; }

  void size_for(const Tensor& px);
  void forward_embeddings(const Tensor& px);
  void forward_downsample(const StageParams& st, size_t di, size_t mi);
  void forward_block(const BlockParams& b, size_t bi, size_t mi, float rate, const std::vector<uint64_t>* seeds);
  Tensor forward_head(size_t last);
  float* backward_head(const Tensor& dlogits, size_t last, Gradients& grads);
  void backward_block(const BlockParams& b, size_t bi, size_t mi, float* G, Gradients& grads);
  float* backward_downsample(const StageParams& st, size_t di, size_t mi, const float* G, Gradients& grads);
  void backward_embeddings(const Tensor& px, const float* G, Gradients& grads, Tensor* grad_pixels);
};

// The geometry of every map for this input, and one saved state per block and downsampling.
void TrainGraph::Impl::size_for(const Tensor& px) {
  const ConvNextConfig& cfg = net.config;
  N = px.dim(0);
  geo.clear();
  int64_t H = px.dim(2) / cfg.patch_size, W = px.dim(3) / cfg.patch_size;
  geo.push_back({H, W, cfg.hidden_sizes[0]});
  size_t nblocks = 0, ndowns = 0;
  for (const StageParams& st : net.stages) {
    if (st.has_downsample) {
      H /= 2;
      W /= 2;
      geo.push_back({H, W, st.out_channels});
      ++ndowns;
    }
    for (size_t j = 0; j < st.blocks.size(); ++j) geo.push_back({H, W, st.out_channels});
    nblocks += st.blocks.size();
  }
  maps.resize(geo.size());
  blocks.resize(nblocks);
  downs.resize(ndowns);
  down_packs.resize(ndowns);
  pw1.resize(nblocks);
  pw2.resize(nblocks);
  taps.resize(nblocks);
}

// The stem, as inference runs it (detail::embeddings), keeping its LayerNorm's x̂ and 1/σ.
void TrainGraph::Impl::forward_embeddings(const Tensor& px) {
  const ConvNextConfig& cfg = net.config;
  const int64_t Cin = cfg.num_channels, p = cfg.patch_size, C0 = cfg.hidden_sizes[0], M0 = rows(0), Kp = p * p * Cin;
  kernels::conv_weight_to_patch_linear(net.patch_weight.data(), C0, Cin, p, grow(lin, C0 * Kp));
  stem.pack(ctx, lin.data(), net.patch_bias.data(), C0, Kp, bf16);
  const LayerNormSaved saved{grow(stem_xhat, M0 * C0), grow(stem_rstd, M0)};
  detail::embeddings(ctx, px.data(), N, Cin, px.dim(2), px.dim(3), p, stem.fwd, net.embed_norm.weight.data(),
                     net.embed_norm.bias.data(), grow(patches, M0 * Kp), grow(maps[0], M0 * C0), &saved);
}

// LayerNorm, then the 2×2 stride-2 conv as a GEMM over the normalised map's patches (kept: t).
void TrainGraph::Impl::forward_downsample(const StageParams& st, size_t di, size_t mi) {
  DownState& ds = downs[di];
  const Geo gi = geo[mi], go = geo[mi + 1];
  const int64_t Mi = rows(mi), Mo = rows(mi + 1), K = 4 * gi.C;
  kernels::conv_weight_to_patch_linear(st.down_weight.data(), go.C, gi.C, 2, grow(lin, go.C * K));
  down_packs[di].pack(ctx, lin.data(), st.down_bias.data(), go.C, K, bf16);
  const LayerNormSaved saved{grow(ds.xhat, Mi * gi.C), grow(ds.rstd, Mi)};
  detail::downsample(ctx, maps[mi].data(), {N, gi.H, gi.W, gi.C}, st.down_norm.weight.data(), st.down_norm.bias.data(),
                     down_packs[di].fwd, grow(ds.t, Mi * gi.C), grow(patches, Mo * K), grow(maps[mi + 1], Mo * go.C),
                     &saved);
}

// The block unfolded, step by step, keeping x̂, 1/σ, act'(h), act(h), z and the drop-path factors.
void TrainGraph::Impl::forward_block(const BlockParams& b, size_t bi, size_t mi, float rate,
                                     const std::vector<uint64_t>* seeds) {
  BlockState& bs = blocks[bi];
  const Geo gg = geo[mi];
  const int64_t M = rows(mi), C = gg.C, C4 = 4 * C;
  const float* x = maps[mi].data();
  taps[bi].resize(static_cast<size_t>(49 * C));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < 49; ++t) taps[bi][static_cast<size_t>(t * C + c)] = b.dw_weight[c * 49 + t];
  pw1[bi].pack(ctx, b.pw1_weight.data(), b.pw1_bias.data(), C4, C, bf16);
  pw2[bi].pack(ctx, b.pw2_weight.data(), b.pw2_bias.data(), C, C4, bf16);
  // t = LayerNorm(dwconv(x)), the conv's output never stored; bf16 training (V1) keeps t in bf16,
  // as act(h): pwconv1 and dW1, its readers, round it anyway.
  const bool a_in_bf16 = maps_in_bf16(b);
  float* t = a_in_bf16 ? nullptr : grow(s2, M * C);
  uint16_t* t16 = a_in_bf16 ? grow(bs.t16, M * C) : nullptr;
  kernels::dwconv7_ln_train(ctx, x, N, gg.H, gg.W, C, taps[bi].data(), b.dw_bias.data(), b.norm.weight.data(),
                            b.norm.bias.data(), kBlockEps, t, t16, grow(bs.xhat, M * C), grow(bs.rstd, M));
  // h = t·W1ᵀ + b1, kept as a = act(h) and act'(h) (the backward needs nothing else of h), both
  // computed from h while it is in registers; bf16 training (V1) keeps both in bf16.
  const kernels::ActivationGradient act_grad =
      a_in_bf16 ? kernels::ActivationGradient{nullptr, C4, grow(bs.dact16, M * C4)} : kernels::ActivationGradient{grow(bs.dact, M * C4), C4};
  const float* pw2_in = nullptr;
  if (a_in_bf16) {
    kernels::linear_bf16_out(ctx, M, t16, C, pw1[bi].fwd, grow(bs.a16, M * C4), C4, net.act, act_grad);
  } else {
    float* a = grow(bs.a, M * C4);
    kernels::linear(ctx, M, t, C, pw1[bi].fwd, a, C4, false, net.act, nullptr, &act_grad);
    pw2_in = a;
  }
  float* z = grow(bs.z, M * C);
  if (!b.grn_weight.empty()) {  // V2: GRN over each image's H·W pixels
    float* gn = grow(s3, M * C4);
    kernels::grn(ctx, bs.a.data(), N, gg.H * gg.W, C4, b.grn_weight.data(), b.grn_bias.data(), gn);
    pw2_in = gn;
  }
  // x' = x + drop_path(γ ⊙ z), drop_path scaling whole samples by mask / keep_prob: on each tile
  // of z as the GEMM finishes it (z is kept for γ's gradient; the sum no longer reads it back).
  bs.scale = drop_scales(seeds, N, bi, rate);
  float* y = grow(maps[mi + 1], M * C);
  const float* ls = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
  const int64_t per = M / N;
  const float* scale = bs.scale.data();
  const kernels::TileEpilogue residual = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t r = m0; r < m1; ++r) {
      const float sc = scale[r / per];
      for (int64_t c = n0; c < n1; ++c) y[r * C + c] = x[r * C + c] + sc * ((ls ? ls[c] : 1.0f) * z[r * C + c]);
    }
  };
  if (a_in_bf16) kernels::linear(ctx, M, bs.a16.data(), C4, pw2[bi].fwd, z, C, false, Activation::Linear, &residual);
  else kernels::linear(ctx, M, pw2_in, C4, pw2[bi].fwd, z, C, false, Activation::Linear, &residual);
}

// Mean over H, W, then the head as inference runs it (detail::classifier_head), keeping x̂, 1/σ.
Tensor TrainGraph::Impl::forward_head(size_t last) {
  const ConvNextConfig& cfg = net.config;
  const int64_t CL = geo[last].C, HW = geo[last].H * geo[last].W, L = cfg.num_labels();
  kernels::mean_pool(maps[last].data(), N, HW, CL, grow(pooled, N * CL));
  cls.pack(ctx, net.classifier_weight.data(), net.classifier_bias.data(), L, CL, bf16);
  Tensor logits({N, L});
  const LayerNormSaved saved{grow(head_xhat, N * CL), grow(head_rstd, N)};
  detail::classifier_head(ctx, pooled.data(), N, CL, net.final_norm.weight.data(), net.final_norm.bias.data(),
                          static_cast<float>(cfg.layer_norm_eps), &cls.fwd, grow(pooled_normed, N * CL), logits.data(),
                          &saved);
  return logits;
}

// Classifier, final LayerNorm and the mean: returns d loss / d (the last map).
float* TrainGraph::Impl::backward_head(const Tensor& dlogits, size_t last, Gradients& grads) {
  const int64_t CL = geo[last].C, HW = geo[last].H * geo[last].W, L = net.config.num_labels();
  weight_grad(ctx, dlogits.data(), pooled_normed.data(), N, L, CL, grads.of(net.classifier_weight).data(), bf16);
  kernels::column_sums(ctx, dlogits.data(), N, L, grads.of(net.classifier_bias).data());
  float* dp = grow(dpooled, N * CL);
  kernels::linear(ctx, N, dlogits.data(), L, cls.bwd, dp, CL, false, Activation::Linear);
  kernels::layer_norm_backward(ctx, dp, head_xhat.data(), head_rstd.data(), N, CL, net.final_norm.weight.data(),
                               dp, grads.of(net.final_norm.weight).data(), grads.of(net.final_norm.bias).data());
  // The mean over H·W hands each pixel 1/HW of the pooled gradient.
  float* G = grow(g, rows(last) * CL);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t q = 0; q < HW; ++q)
      for (int64_t c = 0; c < CL; ++c) G[(n * HW + q) * CL + c] = dp[n * CL + c] / static_cast<float>(HW);
  return G;
}

// G is d loss / d x' on entry and d loss / d x on return: the residual passes it unchanged and
// the branch (G·scale_n through γ, pwconv2, act, pwconv1, LayerNorm, dwconv) adds its part.
void TrainGraph::Impl::backward_block(const BlockParams& b, size_t bi, size_t mi, float* G, Gradients& grads) {
  BlockState& bs = blocks[bi];
  const Geo gg = geo[mi];
  const int64_t M = rows(mi), C = gg.C, C4 = 4 * C, per = M / N;
  const float* x = maps[mi].data();
  // dz = G·scale·γ, dγ = Σ G·scale·z and pwconv2's bias gradient Σ dz in one pass; bf16 training
  // (V1) keeps dz in bf16 (its two readers, dW2's and dh's GEMMs, round it anyway).
  const bool in_bf16 = maps_in_bf16(b);  // dz, a, and dh below
  float* dz = in_bf16 ? nullptr : grow(s1, M * C);
  uint16_t* dz16 = in_bf16 ? grow(this->dz16, M * C) : nullptr;
  const float* ls = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
  float* dls = ls ? grads.of(b.layer_scale).data() : nullptr;
  if (in_bf16) kernels::layer_scale_backward(ctx, G, bs.z.data(), bs.scale.data(), per, ls, M, C, dz16, dls, grads.of(b.pw2_bias).data());
  else kernels::layer_scale_backward(ctx, G, bs.z.data(), bs.scale.data(), per, ls, M, C, dz, dls, grads.of(b.pw2_bias).data());
  // pwconv2: dW2 += dzᵀ·a (V2: ·GRN(a), recomputed), da = dz·W2 (V2: then through GRN).
  const bool v2 = !b.grn_weight.empty();
  const float* pw2_in = bs.a.data();
  if (v2) {
    float* gn = grow(s4, M * C4);
    kernels::grn(ctx, bs.a.data(), N, gg.H * gg.W, C4, b.grn_weight.data(), b.grn_bias.data(), gn);
    pw2_in = gn;
  }
  if (in_bf16) kernels::weight_gradient(ctx, M, dz16, C, C, bs.a16.data(), C4, C4, grads.of(b.pw2_weight).data());
  else weight_grad(ctx, dz, pw2_in, M, C, C4, grads.of(b.pw2_weight).data(), bf16);
  // dh = dz·W2 (V2: then through GRN), times act'(h), and db1 = Σ dh, pwconv1's bias gradient of
  // this step. In V1 both on each tile of dh while it is in cache (the product in registers,
  // act'(h) read 128 bytes a row at a time, measured 5-7% slower; the sums in the tile pass rather
  // than a pass of their own: stage 1's dh 9.79 → 8.81 ms).
  float* dh = in_bf16 ? nullptr : grow(s3, M * C4);
  const float* da = bs.dact.data();
  const uint16_t* da16 = bs.dact16.data();
  float* db1s = grow(db1_step, C4);
  std::fill(db1s, db1s + C4, 0.0f);
  if (in_bf16) {
    // bf16: dh is read by dW1 and dt's GEMMs only, which round it to bf16: each tile of dz·W2 is
    // taken from the GEMM's buffer, multiplied and summed as below and kept in bf16 only (the
    // same bits, without dh's fp32 trip to memory and back).
    db1.reset(M, C4);
    uint16_t* h16 = grow(dh16, M * C4);
    const kernels::TileConsumer keep = [&](const kernels::OutputTile& o) {
      kernels::multiply_rows_to_bf16(ctx.serial(), o.m1 - o.m0, o.n1 - o.n0, o.data, o.ld, da16 + o.m0 * C4 + o.n0, C4,
                                     h16 + o.m0 * C4 + o.n0, C4, db1.tile(o.m0, o.n0, o.n1));
    };
    kernels::linear_tiles(ctx, M, dz16, C, pw2[bi].bwd, keep);
    db1.finish(db1s);
  } else if (!v2) {
    db1.reset(M, C4);
    const kernels::TileEpilogue act_grad = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
      kernels::multiply_rows(ctx.serial(), m1 - m0, n1 - n0, dh + m0 * C4 + n0, C4, da + m0 * C4 + n0, C4,
                             db1.tile(m0, n0, n1));
    };
    kernels::linear(ctx, M, dz, C, pw2[bi].bwd, dh, C4, false, Activation::Linear, &act_grad);
    db1.finish(db1s);
  } else {
    kernels::linear(ctx, M, dz, C, pw2[bi].bwd, dh, C4, false, Activation::Linear);
    kernels::grn_backward(ctx, bs.a.data(), dh, N, gg.H * gg.W, C4, b.grn_weight.data(), dh,
                          grads.of(b.grn_weight).data(), grads.of(b.grn_bias).data());
    constexpr int64_t kRows = 64;
    parallel::for_each((M + kRows - 1) / kRows, ctx.threads, M * C4 > 32768, [&](int64_t blk) {
      const int64_t r0 = blk * kRows;
      kernels::multiply_rows(ctx.serial(), std::min(kRows, M - r0), C4, dh + r0 * C4, C4, da + r0 * C4, C4);
    });
    kernels::column_sums(ctx, dh, M, C4, db1s);
  }
  float* gb1 = grads.of(b.pw1_bias).data();
  for (int64_t n = 0; n < C4; ++n) gb1[n] += db1s[n];
  // pwconv1: dW1 += dhᵀ·t with t = x̂·γ + β, then dt = dh·W1. bf16 training (V1) kept t in bf16
  // from the forward: both operands as the GEMM rounds them, nothing to make or convert. Otherwise,
  // where the map holds at least twice W1's values (stages 1 and 2 of ConvNeXt-T), from x̂ itself:
  // dhᵀ·t = (dhᵀ·x̂)·diag(γ) + db1·βᵀ, which spares a pass writing t over the map for one over W1
  // (stage 1: 1.08 → 0.09 ms a block; at stage 3's M ≈ 4C the pass over W1 costs more: 0.33 →
  // 0.44 ms); elsewhere t is made again. (V2 in bf16 then rounds x̂ rather than t, the β term
  // being exact: the same product up to where the rounding falls.)
  const float* gam = b.norm.weight.data();
  const float* bet = b.norm.bias.data();
  float* dW1 = grads.of(b.pw1_weight).data();
  const auto dW1_from = [&](const float* x, float* out) { weight_grad(ctx, dh, x, M, C4, C, out, bf16); };
  if (in_bf16) {
    kernels::weight_gradient(ctx, M, dh16.data(), C4, C4, bs.t16.data(), C, C, dW1);
  } else if (M >= 2 * C4) {
    float* P = grow(pw1_part, C4 * C);
    std::fill(P, P + C4 * C, 0.0f);
    dW1_from(bs.xhat.data(), P);
    parallel::for_each(C4, ctx.threads, C4 * C > 32768, [&](int64_t n) {
      for (int64_t k = 0; k < C; ++k) dW1[n * C + k] += P[n * C + k] * gam[k] + db1s[n] * bet[k];
    });
  } else {
    float* t = grow(s2, M * C);
    parallel::for_each(M, ctx.threads, M * C > 32768, [&](int64_t r) {
      for (int64_t c = 0; c < C; ++c) t[r * C + c] = bs.xhat[static_cast<size_t>(r * C + c)] * gam[c] + bet[c];
    });
    dW1_from(t, dW1);
  }
  float* dt = grow(s2, M * C);
  if (in_bf16) kernels::linear(ctx, M, dh16.data(), C4, pw1[bi].bwd, dt, C, false, Activation::Linear);
  else kernels::linear(ctx, M, dh, C4, pw1[bi].bwd, dt, C, false, Activation::Linear);
  kernels::layer_norm_backward(ctx, dt, bs.xhat.data(), bs.rstd.data(), M, C, gam, dt, grads.of(b.norm.weight).data(),
                               grads.of(b.norm.bias).data());
  // Depthwise conv: its input gradient is added to G, the residual's.
  float* dw = grow(dw49, 49 * C);
  std::fill(dw, dw + 49 * C, 0.0f);
  kernels::dwconv7_backward(ctx, x, dt, N, gg.H, gg.W, C, taps[bi].data(), G, dw, grads.of(b.dw_bias).data());
  float* gdw = grads.of(b.dw_weight).data();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t tp = 0; tp < 49; ++tp) gdw[c * 49 + tp] += dw[tp * C + c];
}

// The conv's and the LayerNorm's gradients; returns d loss / d (the larger input map).
float* TrainGraph::Impl::backward_downsample(const StageParams& st, size_t di, size_t mi, const float* G,
                                             Gradients& grads) {
  DownState& ds = downs[di];
  const Geo gi = geo[mi], go = geo[mi + 1];
  const int64_t Mi = rows(mi), Mo = rows(mi + 1), K = 4 * gi.C;
  kernels::patchify_nhwc(ctx, ds.t.data(), N, gi.H, gi.W, gi.C, 2, grow(patches, Mo * K));
  float* dl = grow(dlin, go.C * K);
  std::fill(dl, dl + go.C * K, 0.0f);
  weight_grad(ctx, G, patches.data(), Mo, go.C, K, dl, bf16);
  kernels::patch_linear_to_conv_weight_add(dl, go.C, gi.C, 2, grads.of(st.down_weight).data());
  kernels::column_sums(ctx, G, Mo, go.C, grads.of(st.down_bias).data());
  float* dp = grow(dpatch, Mo * K);
  kernels::linear(ctx, Mo, G, go.C, down_packs[di].bwd, dp, K, false, Activation::Linear);
  float* dt = grow(s1, Mi * gi.C);
  kernels::unpatchify_nhwc(ctx, dp, N, gi.H, gi.W, gi.C, 2, dt);
  float* dx = grow(g, Mi * gi.C);  // the same buffer as G, now for the larger map (G is consumed)
  kernels::layer_norm_backward(ctx, dt, ds.xhat.data(), ds.rstd.data(), Mi, gi.C, st.down_norm.weight.data(), dx,
                               grads.of(st.down_norm.weight).data(), grads.of(st.down_norm.bias).data());
  return dx;
}

void TrainGraph::Impl::backward_embeddings(const Tensor& px, const float* G, Gradients& grads, Tensor* grad_pixels) {
  const ConvNextConfig& cfg = net.config;
  const int64_t Cin = cfg.num_channels, p = cfg.patch_size, C0 = cfg.hidden_sizes[0], M0 = rows(0), Kp = p * p * Cin;
  const int64_t Hin = px.dim(2), Win = px.dim(3);
  float* dy0 = grow(s1, M0 * C0);
  kernels::layer_norm_backward(ctx, G, stem_xhat.data(), stem_rstd.data(), M0, C0, net.embed_norm.weight.data(), dy0,
                               grads.of(net.embed_norm.weight).data(), grads.of(net.embed_norm.bias).data());
  kernels::patchify_nchw(ctx, px.data(), N, Cin, Hin, Win, p, grow(patches, M0 * Kp));
  float* dl = grow(dlin, C0 * Kp);
  std::fill(dl, dl + C0 * Kp, 0.0f);
  weight_grad(ctx, dy0, patches.data(), M0, C0, Kp, dl, bf16);
  kernels::patch_linear_to_conv_weight_add(dl, C0, Cin, p, grads.of(net.patch_weight).data());
  kernels::column_sums(ctx, dy0, M0, C0, grads.of(net.patch_bias).data());
  if (!grad_pixels) return;
  float* dp = grow(dpatch, M0 * Kp);
  kernels::linear(ctx, M0, dy0, C0, stem.bwd, dp, Kp, false, Activation::Linear);
  *grad_pixels = Tensor({N, Cin, Hin, Win});
  kernels::unpatchify_nchw(ctx, dp, N, Cin, Hin, Win, p, grad_pixels->data());
}

TrainGraph::TrainGraph(Parameters& net, const Context& ctx, DType compute)
    : impl_(std::make_unique<Impl>(net, ctx, compute == DType::BF16)) {
  if (compute != DType::F32 && compute != DType::BF16)
    throw Error(std::string("training runs in f32 or bf16 (mixed precision), not ") + dtype_short_name(compute));
  if (net.arch != Architecture::ForImageClassification)
    throw Error("training needs a ConvNextForImageClassification model");
  if (net.config.num_labels() < 1) throw Error("training needs num_labels >= 1 (the model has no classifier)");
}
TrainGraph::~TrainGraph() = default;

// The parameters of a block, a downsampling layer, the head and the stem, for on_grads_ready.
static std::vector<const Tensor*> block_params(const BlockParams& b) {
  std::vector<const Tensor*> p = {&b.dw_weight, &b.dw_bias, &b.norm.weight, &b.norm.bias, &b.pw1_weight,
                                  &b.pw1_bias,  &b.pw2_weight, &b.pw2_bias};
  if (!b.layer_scale.empty()) p.push_back(&b.layer_scale);
  if (!b.grn_weight.empty()) {
    p.push_back(&b.grn_weight);
    p.push_back(&b.grn_bias);
  }
  return p;
}

TrainGraph::Result TrainGraph::forward_backward(const Tensor& px, const Labels& labels, Gradients& grads,
                                                const StepOptions& so) {
  Impl& m = *impl_;
  const Parameters& net = m.net;
  detail::check_pixel_values(net.config, px);
  if (so.sample_seeds && static_cast<int64_t>(so.sample_seeds->size()) != px.dim(0))
    throw Error("internal: one stochastic-depth seed per sample is needed");
  m.size_for(px);
  const std::vector<float> rates = drop_path_rates(net.config);
  auto ready = [&](std::vector<const Tensor*> params) {
    if (so.on_grads_ready) so.on_grads_ready(params);
  };

  detail::PartTimer timer(so.profile);
  size_t mi = 0, bi = 0, di = 0;  // the map, block and downsampling layer at hand
  m.forward_embeddings(px);
  timer.mark("embeddings");
  for (size_t s = 0; s < net.stages.size(); ++s) {
    const StageParams& st = net.stages[s];
    if (st.has_downsample) {
      m.forward_downsample(st, di++, mi++);
      timer.mark("downsample", static_cast<int64_t>(s));
    }
    for (const BlockParams& b : st.blocks) {
      m.forward_block(b, bi, mi++, rates[bi], so.sample_seeds);
      ++bi;
    }
    timer.mark("blocks", static_cast<int64_t>(s));
  }
  Result r;
  r.logits = m.forward_head(mi);
  timer.mark("head");
  r.problem_type = net.config.problem_type.value_or("");
  Tensor dlogits;
  r.loss = loss_and_grad(r.logits, labels, r.problem_type, dlogits);
  if (so.loss_scale != 1.0f)
    for (int64_t i = 0; i < dlogits.numel(); ++i) dlogits[i] *= so.loss_scale;
  timer.mark("loss");

  float* G = m.backward_head(dlogits, mi, grads);
  ready({&net.classifier_weight, &net.classifier_bias, &net.final_norm.weight, &net.final_norm.bias});
  timer.mark("head", -1, "backward.");
  for (size_t s = net.stages.size(); s-- > 0;) {
    const StageParams& st = net.stages[s];
    for (size_t j = st.blocks.size(); j-- > 0;) {
      m.backward_block(st.blocks[j], --bi, --mi, G, grads);
      ready(block_params(st.blocks[j]));
    }
    timer.mark("blocks", static_cast<int64_t>(s), "backward.");
    if (st.has_downsample) {
      G = m.backward_downsample(st, --di, --mi, G, grads);
      ready({&st.down_norm.weight, &st.down_norm.bias, &st.down_weight, &st.down_bias});
      timer.mark("downsample", static_cast<int64_t>(s), "backward.");
    }
  }
  m.backward_embeddings(px, G, grads, so.grad_pixels);
  ready({&net.patch_weight, &net.patch_bias, &net.embed_norm.weight, &net.embed_norm.bias});
  timer.mark("embeddings", -1, "backward.");
  return r;
}

}  // namespace convnext::train
