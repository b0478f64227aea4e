// The ConvNeXt forward pass, as in the paper and transformers' modeling_convnext.py:
//
//   embeddings:  patchify conv (p×p, stride p) → LayerNorm (eps 1e-6)
//   each stage:  [downsampling: LayerNorm (eps 1e-6) → 2×2 stride-2 conv] → blocks
//   each block:  x + γ · pwconv2(act(pwconv1(LayerNorm(dwconv7×7(x)))))
//   pooler:      mean over H, W → LayerNorm (eps = config.layer_norm_eps)
//
// Feature maps live in NHWC, so the two pointwise layers, the patch convolutions and every
// LayerNorm are row operations over contiguous channels.
#include <omp.h>

#include <algorithm>
#include <cmath>

#include "convnext/error.h"
#include "model/network.h"

namespace convnext::detail {

namespace {

constexpr float kBlockEps = 1e-6f;  // every LayerNorm but the final one (hard-coded in transformers)

// A feature map in NHWC.
struct Map {
  Tensor data;  // [N, H, W, C]
  int64_t N, H, W, C;
  int64_t pixels() const { return N * H * W; }
};

// Rows of pixels per MLP tile: enough to keep the microkernel busy, few enough that the tile's
// 4C-wide hidden activations (≤ 512 KiB) stay in the core's L2 between pwconv1 and pwconv2,
// and enough tiles to share among the threads.
int64_t mlp_tile_rows(int64_t M, int64_t C, int threads) {
  const int64_t cap = std::max<int64_t>(24, (131072 / (4 * C)) / 12 * 12);
  const int64_t want = (M / (12 * threads)) / 12 * 12;
  return std::clamp<int64_t>(want, 48, std::max<int64_t>(48, cap));
}

// ConvNextLayer, with LayerNorm's affine folded into pwconv1 and γ into pwconv2 (see prepare()):
//   t = LayerNorm(dwconv(x));  x += pwconv2(act(pwconv1(t)))
// When the map has enough pixels, the MLP runs tile by tile, each thread taking whole tiles, so
// the hidden activations never leave the core's cache; otherwise (the small late stages at
// batch 1) each GEMM is split over the threads by output columns.
void block_forward(const Block& b, Map& x, Activation act, std::vector<float>& t, std::vector<float>& h) {
  const int64_t M = x.pixels(), C = x.C, H4 = 4 * C;
  t.resize(static_cast<size_t>(M * C));
  kernels::dwconv7_ln(x.data.data(), x.N, x.H, x.W, C, b.dw_taps.data(), b.dw_bias.data(), kBlockEps, t.data());
  const int threads = num_threads();
  const int64_t tm = mlp_tile_rows(M, C, threads), tiles = (M + tm - 1) / tm;
  if (threads > 1 && tiles >= 4 * threads) {
    h.resize(static_cast<size_t>(threads * tm * H4));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int64_t i = 0; i < tiles; ++i) {
      const int64_t m0 = i * tm, rows = std::min(tm, M - m0);
      float* hidden = h.data() + static_cast<int64_t>(omp_get_thread_num()) * tm * H4;
      kernels::linear(rows, t.data() + m0 * C, C, b.pw1, hidden, H4, /*accumulate=*/false, act);
      kernels::linear(rows, hidden, H4, b.pw2, x.data.data() + m0 * C, C, /*accumulate=*/true, Activation::Linear);
    }
    return;
  }
  h.resize(static_cast<size_t>(M * H4));
  kernels::linear(M, t.data(), C, b.pw1, h.data(), H4, /*accumulate=*/false, act);
  kernels::linear(M, h.data(), H4, b.pw2, x.data.data(), C, /*accumulate=*/true, Activation::Linear);
}

// Downsampling layer: LayerNorm over channels, then a 2×2 stride-2 conv as a GEMM over patches.
Map downsample(const Stage& st, const Map& x, std::vector<float>& t) {
  const int64_t M = x.pixels(), C = x.C;
  t.resize(static_cast<size_t>(M * C));
  kernels::layer_norm(x.data.data(), M, C, st.down_norm.weight.data(), st.down_norm.bias.data(), kBlockEps, t.data());
  Map y{Tensor({x.N, x.H / 2, x.W / 2, st.out_channels}), x.N, x.H / 2, x.W / 2, st.out_channels};
  std::vector<float> patches(static_cast<size_t>(y.pixels() * 4 * C));
  kernels::patchify_nhwc(t.data(), x.N, x.H, x.W, C, 2, patches.data());
  kernels::linear(y.pixels(), patches.data(), 4 * C, st.down, y.data.data(), y.C, false, Activation::Linear);
  return y;
}

}  // namespace

Tensor nhwc_to_nchw(const Tensor& x) {
  Tensor out({x.dim(0), x.dim(3), x.dim(1), x.dim(2)});
  kernels::nhwc_to_nchw(x.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), out.data());
  return out;
}

void Network::check_input(const Tensor& px) const {
  if (px.ndim() != 4)
    throw Error("pixel_values must have 4 dimensions [N, C, H, W], got shape " + shape_str(px.shape()));
  if (px.dim(1) != config.num_channels)
    throw Error("Make sure that the channel dimension of the pixel values match with the one set in the configuration "
                "(pixel_values has " + std::to_string(px.dim(1)) + " channels, num_channels is " +
                std::to_string(config.num_channels) + ")");
  if (px.dim(0) < 1) throw Error("pixel_values has batch size 0");
  int64_t h = px.dim(2) / config.patch_size, w = px.dim(3) / config.patch_size;
  int64_t need = config.patch_size;
  for (int64_t s = 0; s < config.num_stages; ++s) {
    if (s > 0 && stages[static_cast<size_t>(s)].has_downsample) {
      h /= 2;
      w /= 2;
      need *= 2;
    }
    if (h < 1 || w < 1)
      throw Error("input " + std::to_string(px.dim(2)) + "x" + std::to_string(px.dim(3)) +
                  " is too small for this model: the stem (patch " + std::to_string(config.patch_size) + ") and " +
                  std::to_string(config.num_stages - 1) + " stride-2 downsamplings need at least " +
                  std::to_string(need) + "x" + std::to_string(need));
  }
}

Network::Result Network::run_encoder(const Tensor& px, bool keep_hidden) const {
  check_input(px);
  const int64_t N = px.dim(0), p = config.patch_size, Cin = config.num_channels;
  Result r;
  std::vector<float> t, h;

  // Embeddings.
  const int64_t C0 = config.hidden_sizes[0];
  Map x{Tensor({N, px.dim(2) / p, px.dim(3) / p, C0}), N, px.dim(2) / p, px.dim(3) / p, C0};
  {
    std::vector<float> patches(static_cast<size_t>(x.pixels() * p * p * Cin));
    kernels::patchify_nchw(px.data(), N, Cin, px.dim(2), px.dim(3), p, patches.data());
    kernels::linear(x.pixels(), patches.data(), p * p * Cin, patch, x.data.data(), C0, false, Activation::Linear);
    kernels::layer_norm(x.data.data(), x.pixels(), C0, embed_norm.weight.data(), embed_norm.bias.data(), kBlockEps,
                        x.data.data());
  }
  if (keep_hidden) r.hidden_nhwc.push_back(x.data.clone());

  // Encoder stages.
  for (const Stage& st : stages) {
    if (st.has_downsample) x = downsample(st, x, t);
    for (const Block& b : st.blocks) block_forward(b, x, act, t, h);
    if (keep_hidden) r.hidden_nhwc.push_back(x.data.clone());
  }
  r.last_hidden_state = nhwc_to_nchw(x.data);

  // Global average pooling over H, W (the final LayerNorm is the head's).
  r.pooled = Tensor({N, x.C});
  kernels::mean_pool(x.data.data(), N, x.H * x.W, x.C, r.pooled.data());
  return r;
}

}  // namespace convnext::detail
