// The ConvNeXt forward pass, as in the paper and transformers' modeling_convnext.py:
//
//   embeddings:  patchify conv (p×p, stride p) → LayerNorm (eps 1e-6)
//   each stage:  [downsampling: LayerNorm (eps 1e-6) → 2×2 stride-2 conv] → blocks
//   each block:  x + γ · pwconv2(act(pwconv1(LayerNorm(dwconv7×7(x)))))
//   V2 block:    x + pwconv2(GRN(act(pwconv1(LayerNorm(dwconv7×7(x))))))   (modeling_convnextv2.py)
//   pooler:      mean over H, W → LayerNorm (eps = config.layer_norm_eps)
//
// Feature maps live in NHWC, so the two pointwise layers, the patch convolutions and every
// LayerNorm are row operations over contiguous channels.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>

#include "convnext/error.h"
#include "core/parallel.h"
#include "kernels/grn.h"
#include "model/layers.h"
#include "model/part_timer.h"
#include "model/plan.h"

namespace convnext::detail {

namespace {

// A feature map in NHWC, in one of the workspace's buffers.
struct Map {
  float* data;
  int64_t N, H, W, C;
  int64_t pixels() const { return N * H * W; }
  MapShape shape() const { return {N, H, W, C}; }
};

float* grow(kernels::AlignedVector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Rows of pixels per MLP tile, or 0 to run the MLP over the whole map. Tiles hold enough rows to
// keep the microkernel busy and few enough that the tile's 4C-wide hidden activations (512 KiB,
// or more where 48 rows need more: C > 682) stay in the core's L2 between pwconv1 and pwconv2, if there are enough of them to share among
// the threads (with one thread too: stage 1 of ConvNeXt-T at batch 1 takes 7.1 ms in tiles, 10.4
// with its 4.8 MB hidden map going through L3). Too few pixels for that (stage 3 at batch 1: 196)
// but still ≥ 96 rows per thread: one slice of rows per thread. Its hidden slice may outgrow the
// L2, but it stays on its core, where splitting each GEMM by columns would send the hidden
// activations across cores between pwconv1 and pwconv2 (stage 3 at batch 1, 2 threads: about 8%
// faster). But when the process is contended (parallel::contended(): other processes take the
// cores) a slice per thread means a loop of as many chunks as threads, which waits for whichever
// thread was descheduled; then the GEMMs are split by columns instead, in many small tiles.
int64_t mlp_tile_rows(int64_t M, int64_t C, int threads, bool contended) {
  const int64_t cap = std::max<int64_t>(24, (131072 / (4 * C)) / 12 * 12);
  const int64_t want = (M / (12 * threads)) / 12 * 12;
  const int64_t tm = std::clamp<int64_t>(want, 48, std::max<int64_t>(48, cap));
  if ((M + tm - 1) / tm >= 4 * threads) return tm;
  if (M / threads >= 96 && !contended) return (M + threads - 1) / threads;
  return 0;
}

// Whole image rows per tile of the fused block (block_fused), about mlp_tile_rows' pixels; 0 when
// the block runs over the whole map instead (too few pixels for tiles: stage 4 at batch 1).
int64_t fused_tile_rows(int64_t M, int64_t W, int64_t C, int threads, bool contended) {
  const int64_t tm = mlp_tile_rows(M, C, threads, contended);
  return tm > 0 ? std::max<int64_t>(1, (tm + W / 2) / W) : 0;
}

// What a block needs beyond the two map buffers, for either tiling (contention may change between
// passes): per thread one tile's normalised rows (C wide) and hidden activations (4C wide), or for
// the whole-map block M × 4C hidden values.
struct BlockScratch {
  int64_t normed = 0, hidden = 0;
};
BlockScratch block_scratch(int64_t M, int64_t W, int64_t C, int threads) {
  BlockScratch s;
  for (const bool contended : {false, true}) {
    if (const int64_t rpt = fused_tile_rows(M, W, C, threads, contended); rpt > 0) {
      s.normed = std::max(s.normed, threads * rpt * W * C);
      s.hidden = std::max(s.hidden, threads * rpt * W * 4 * C);
    } else {
      s.normed = std::max(s.normed, M * C);
      s.hidden = std::max(s.hidden, M * 4 * C);
    }
  }
  return s;
}

// ConvNextLayer, with LayerNorm's affine folded into pwconv1 and γ into pwconv2 (see prepare()),
// tile by tile of whole image rows: each tile's
//   t = LayerNorm(dwconv(x));  y = x + pwconv2(act(pwconv1(t)))
// on one thread, so one loop per block (one wait for the slowest thread, which matters when other
// processes take the cores), and the tile's normalised rows and hidden activations stay in its
// core's cache. The result goes to another buffer, y: the neighbouring tiles still read x's rows
// around theirs. A map with too few pixels for many tiles but at least 96 rows per thread (stage
// 3 at batch 1, idle) gets one tile per thread: its hidden slice stays on its core instead of
// crossing between cores as it would if each GEMM were split by columns.
void block_fused(const kernels::Context& ctx, const BlockPlan& b, const Map& x, float* y, Activation act, float* t,
                 float* h, int64_t rpt) {
  const int64_t C = x.C, H4 = 4 * C, W = x.W, NH = x.N * x.H;
  const int64_t tiles = (NH + rpt - 1) / rpt;
  const kernels::Context one = ctx.serial();  // each tile runs on the thread that took it
  parallel::for_chunks(tiles, 1, [&](int64_t i, int64_t) {
    const int64_t r0 = i * rpt, r1 = std::min(NH, r0 + rpt), m0 = r0 * W, rows = (r1 - r0) * W;
    const int64_t slot = parallel::thread_index();
    float* tt = t + slot * rpt * W * C;
    float* hidden = h + slot * rpt * W * H4;
    kernels::dwconv7_ln_rows(one, x.data, x.N, x.H, W, C, b.taps.data(), b.dw_bias.data(), kBlockEps, r0, r1, tt);
    kernels::linear(one, rows, tt, C, b.pw1, hidden, H4, /*accumulate=*/false, act);
    std::memcpy(y + m0 * C, x.data + m0 * C, static_cast<size_t>(rows * C) * sizeof(float));
    kernels::linear(one, rows, hidden, H4, b.pw2, y + m0 * C, C, /*accumulate=*/true, Activation::Linear);
  }, ctx.threads);
}

// The same over the whole map, in place (x += ...), each GEMM split over the threads by output
// columns: for maps too small for tiles (stage 4 at batch 1, 49 pixels), and for stage 3 at batch
// 1 when the process is contended (see mlp_tile_rows).
void block_whole_map(const kernels::Context& ctx, const BlockPlan& b, const Map& x, Activation act, float* t, float* h) {
  const int64_t M = x.pixels(), C = x.C, H4 = 4 * C;
  kernels::dwconv7_ln(ctx, x.data, x.N, x.H, x.W, C, b.taps.data(), b.dw_bias.data(), kBlockEps, t);
  kernels::linear(ctx, M, t, C, b.pw1, h, H4, /*accumulate=*/false, act);
  kernels::linear(ctx, M, h, H4, b.pw2, x.data, C, /*accumulate=*/true, Activation::Linear);
}

// ConvNeXt V2's block. GRN scales each channel of pwconv1's output by its norm over the whole
// image, so pwconv2 cannot start on a tile before every tile of that image has been through
// pwconv1: the block runs in two passes over tiles of whole image rows, each tile inside one
// image. Pass 1: t = LayerNorm(dwconv(x)), h = act(pwconv1(t)) into the whole-map hidden buffer,
// and the tile's sums of squares of h (while h is in cache). Then per image: scale = 1 + γ·N from
// its tiles' sums (in tile order: the same sums whatever thread ran a tile). Pass 2: h = h·scale
// + β, x += pwconv2(h), in place (pass 1 has read every x it needs).
struct V2Tiles {
  int64_t per_image, count;  // tiles of rpt image rows (the last one of an image shorter)
};
V2Tiles v2_tiles(int64_t N, int64_t H, int64_t rpt) {
  const int64_t per = (H + rpt - 1) / rpt;
  return {per, N * per};
}

void block_v2_fused(const kernels::Context& ctx, const BlockPlan& b, const Map& x, Activation act, float* t, float* h,
                    double* sumsq, float* scale, int64_t rpt) {
  const int64_t C = x.C, H4 = 4 * C, W = x.W, HW = x.H * x.W;
  const V2Tiles tl = v2_tiles(x.N, x.H, rpt);
  const kernels::Context one = ctx.serial();
  auto rows_of = [&](int64_t i, int64_t& r0, int64_t& r1) {
    const int64_t n = i / tl.per_image, h0 = (i % tl.per_image) * rpt;
    r0 = n * x.H + h0;
    r1 = n * x.H + std::min(x.H, h0 + rpt);
  };
  parallel::for_chunks(tl.count, 1, [&](int64_t i, int64_t) {
    int64_t r0, r1;
    rows_of(i, r0, r1);
    const int64_t m0 = r0 * W, rows = (r1 - r0) * W;
    float* tt = t + parallel::thread_index() * rpt * W * C;
    kernels::dwconv7_ln_rows(one, x.data, x.N, x.H, W, C, b.taps.data(), b.dw_bias.data(), kBlockEps, r0, r1, tt);
    kernels::linear(one, rows, tt, C, b.pw1, h + m0 * H4, H4, /*accumulate=*/false, act);
    double* acc = sumsq + i * H4;
    std::fill(acc, acc + H4, 0.0);
    kernels::grn_sum_squares(h + m0 * H4, rows, H4, acc);
  }, ctx.threads);
  for (int64_t n = 0; n < x.N; ++n) {
    double* first = sumsq + n * tl.per_image * H4;
    for (int64_t k = 1; k < tl.per_image; ++k)
      for (int64_t c = 0; c < H4; ++c) first[c] += first[k * H4 + c];
    kernels::grn_scale(first, H4, b.grn_gamma.data(), scale + n * H4, nullptr);
  }
  parallel::for_chunks(tl.count, 1, [&](int64_t i, int64_t) {
    int64_t r0, r1;
    rows_of(i, r0, r1);
    const int64_t m0 = r0 * W, rows = (r1 - r0) * W;
    kernels::grn_apply(h + m0 * H4, rows, H4, scale + (m0 / HW) * H4, b.grn_beta.data(), h + m0 * H4);
    kernels::linear(one, rows, h + m0 * H4, H4, b.pw2, x.data + m0 * C, C, /*accumulate=*/true, Activation::Linear);
  }, ctx.threads);
}

// The V2 block over the whole map, each step on all threads (maps too small for tiles).
void block_v2_whole_map(const kernels::Context& ctx, const BlockPlan& b, const Map& x, Activation act, float* t, float* h,
                        double* sumsq, float* scale) {
  const int64_t M = x.pixels(), C = x.C, H4 = 4 * C, HW = x.H * x.W;
  kernels::dwconv7_ln(ctx, x.data, x.N, x.H, x.W, C, b.taps.data(), b.dw_bias.data(), kBlockEps, t);
  kernels::linear(ctx, M, t, C, b.pw1, h, H4, /*accumulate=*/false, act);
  kernels::grn_statistics(ctx, h, x.N, HW, H4, sumsq);
  for (int64_t n = 0; n < x.N; ++n) kernels::grn_scale(sumsq + n * H4, H4, b.grn_gamma.data(), scale + n * H4, nullptr);
  kernels::grn_apply_images(ctx, h, x.N, HW, H4, scale, b.grn_beta.data(), h);
  kernels::linear(ctx, M, h, H4, b.pw2, x.data, C, /*accumulate=*/true, Activation::Linear);
}

Tensor copy_out(const Map& x) {
  Tensor t({x.N, x.H, x.W, x.C});
  std::copy(x.data, x.data + x.pixels() * x.C, t.data());
  return t;
}

}  // namespace

Tensor nhwc_to_nchw(const kernels::Context& ctx, const Tensor& x) {
  Tensor out({x.dim(0), x.dim(3), x.dim(1), x.dim(2)});
  kernels::nhwc_to_nchw(ctx, x.data(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), out.data());
  return out;
}

std::vector<MapShape> InferencePlan::reserve(Workspace& ws, int64_t N, int64_t H, int64_t W, int threads) const {
  const int64_t p = config.patch_size, Cin = config.num_channels;
  std::vector<MapShape> maps;
  int64_t h = H / p, w = W / p;
  int64_t map_floats = N * h * w * config.hidden_sizes[0], hidden = 0, normed = 0, patch_floats = N * h * w * p * p * Cin;
  int64_t grn_sumsq = 0, grn_scale = 0;
  for (const StagePlan& st : stages) {
    if (st.has_downsample) {
      patch_floats = std::max(patch_floats, N * (h / 2) * (w / 2) * 4 * st.in_channels);
      h /= 2;
      w /= 2;
    }
    maps.push_back({N, h, w, st.out_channels});
    map_floats = std::max(map_floats, N * h * w * std::max(st.in_channels, st.out_channels));
    const BlockScratch bs = block_scratch(N * h * w, w, st.out_channels, threads);
    hidden = std::max(hidden, bs.hidden);
    normed = std::max(normed, bs.normed);
    if (config.is_v2() && !st.blocks.empty()) {  // the whole hidden map, and GRN's statistics per tile
      const int64_t H4 = 4 * st.out_channels;
      hidden = std::max(hidden, N * h * w * H4);
      grn_sumsq = std::max(grn_sumsq, N * H4);  // the whole-map block: one row of sums per image
      for (const bool contended : {false, true})
        if (const int64_t rpt = fused_tile_rows(N * h * w, w, st.out_channels, threads, contended); rpt > 0)
          grn_sumsq = std::max(grn_sumsq, v2_tiles(N, h, rpt).count * H4);
      grn_scale = std::max(grn_scale, N * H4);
    }
  }
  grow(ws.map[0], map_floats);
  grow(ws.map[1], map_floats);
  grow(ws.normed, std::max(map_floats, normed));
  grow(ws.hidden, hidden);
  grow(ws.patches, patch_floats);
  if (static_cast<int64_t>(ws.grn_sumsq.size()) < grn_sumsq) ws.grn_sumsq.resize(static_cast<size_t>(grn_sumsq));
  grow(ws.grn_scale, grn_scale);
  return maps;
}

void InferencePlan::reserve_default_workspace(int threads) const {
  const int64_t s = config.image_size;
  int64_t h = s / config.patch_size;
  for (const StagePlan& st : stages) h = st.has_downsample ? h / 2 : h;
  if (h < 1) return;  // an image_size too small for the model reserves nothing
  std::lock_guard<std::mutex> lock(workspace_mutex_);
  reserve(workspace_, 1, s, s, threads);
}

InferencePlan::Result InferencePlan::run_encoder(const Exec& ex, const Tensor& px, bool keep_hidden) const {
  check_pixel_values(config, px);
  const kernels::Context& ctx = ex.kernels;
  const int64_t N = px.dim(0), p = config.patch_size;
  std::lock_guard<std::mutex> lock(workspace_mutex_);
  const parallel::LoadProbe probe;  // this pass tells whether the next one is contended
  const std::vector<MapShape> maps = reserve(workspace_, N, px.dim(2), px.dim(3), ctx.threads);
  Workspace& ws = workspace_;
  float* buf[2] = {ws.map[0].data(), ws.map[1].data()};
  float* t = ws.normed.data();
  float* hbuf = ws.hidden.data();
  Result r;
  PartTimer timer(ex.profile);

  Map x{buf[0], N, px.dim(2) / p, px.dim(3) / p, config.hidden_sizes[0]};
  embeddings(ctx, px.data(), N, config.num_channels, px.dim(2), px.dim(3), p, patch, embed_norm.gamma.data(),
             embed_norm.beta.data(), ws.patches.data(), x.data, nullptr);
  if (keep_hidden) r.hidden_nhwc.push_back(copy_out(x));
  timer.mark("embeddings");

  // Encoder stages; a downsampling layer, and a block run in tiles, write into the other buffer.
  int cur = 0;
  for (size_t s = 0; s < stages.size(); ++s) {
    const StagePlan& st = stages[s];
    if (st.has_downsample) {
      const MapShape& o = maps[s];
      downsample(ctx, x.data, x.shape(), st.down_norm.gamma.data(), st.down_norm.beta.data(), st.down, t,
                 ws.patches.data(), buf[1 - cur], nullptr);
      x = {buf[1 - cur], o.N, o.H, o.W, o.C};
      cur = 1 - cur;
      timer.mark("downsample", static_cast<int64_t>(s));
    }
    for (const BlockPlan& b : st.blocks) {
      const int64_t rpt = fused_tile_rows(x.pixels(), x.W, x.C, ctx.threads, ex.contended);
      if (!b.grn_gamma.empty()) {  // V2: in place, in two passes (see block_v2_fused)
        if (rpt > 0) block_v2_fused(ctx, b, x, act, t, hbuf, ws.grn_sumsq.data(), ws.grn_scale.data(), rpt);
        else block_v2_whole_map(ctx, b, x, act, t, hbuf, ws.grn_sumsq.data(), ws.grn_scale.data());
        continue;
      }
      if (rpt > 0) {
        block_fused(ctx, b, x, buf[1 - cur], act, t, hbuf, rpt);
        x.data = buf[1 - cur];
        cur = 1 - cur;
      } else {
        block_whole_map(ctx, b, x, act, t, hbuf);
      }
    }
    if (keep_hidden) r.hidden_nhwc.push_back(copy_out(x));
    timer.mark("blocks", static_cast<int64_t>(s));
  }
  r.last_hidden_state = Tensor({N, x.C, x.H, x.W});
  kernels::nhwc_to_nchw(ctx, x.data, N, x.H, x.W, x.C, r.last_hidden_state.data());

  // Global average pooling over H, W (the final LayerNorm is the head's).
  r.pooled = Tensor({N, x.C});
  kernels::mean_pool(x.data, N, x.H * x.W, x.C, r.pooled.data());
  timer.mark("pooling");
  return r;
}

}  // namespace convnext::detail
