// Data movement: weight packing, patch gathering, pooling and layout changes.

#include <algorithm>
#include <cstring>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace convnext::kernels {

namespace {
// Readies P for an fp32 N×K pack, keeping its storage (the panels only grow; the caller writes
// every value, padding included); returns the number of panels. The bias is zeroed.
int64_t reuse_storage(PackedLinear& P, int64_t N, int64_t K) {
  P.N = N;
  P.K = K;
  P.panels_bf16.clear();
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const size_t need = static_cast<size_t>(panels * K * kPanel);
  if (P.panels.size() < need) P.panels.resize(need);
  P.bias.assign(static_cast<size_t>(panels * kPanel), 0.0f);
  return panels;
}

// The fp32 packing, into P's storage: panel p, row k holds W'[32p + j][k] = row_scale[n] · W[n][k] ·
// col_scale[k] (either scale may be null), the last panel's columns past N zeroed.
void pack_fp32_into(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias, int64_t N,
                    int64_t K, PackedLinear& P) {
  const int64_t panels = reuse_storage(P, N, K);
  if (bias) std::copy(bias, bias + N, P.bias.begin());
  // The panel's 32 rows are copied first into a buffer whose row length is a multiple of 16 plus
  // 16: walking k down the rows of W themselves, with a row length a multiple of 4 KiB (stage 4's
  // pwconv2: 3072 floats), kept every row's line in the same few L1 sets, and that pack took 2.6×
  // as long as pwconv1's.
  parallel::for_each(panels, ctx.threads, panels * K * kPanel > 262144, [&](int64_t p) {
    const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0), ld = (K + 15) / 16 * 16 + 16;
    static thread_local AlignedVector<float> rows;
    if (rows.size() < static_cast<size_t>(kPanel * ld)) rows.resize(static_cast<size_t>(kPanel * ld));
    for (int64_t j = 0; j < nc; ++j) std::memcpy(rows.data() + j * ld, W + (n0 + j) * K, static_cast<size_t>(K) * sizeof(float));
    for (int64_t k = 0; k < K; ++k) {
      float* dst = P.panels.data() + (p * K + k) * kPanel;
      const float cs = col_scale ? col_scale[k] : 1.0f;
      for (int64_t j = 0; j < nc; ++j) dst[j] = (row_scale ? row_scale[n0 + j] : 1.0f) * rows[static_cast<size_t>(j * ld + k)] * cs;
      for (int64_t j = nc; j < kPanel; ++j) dst[j] = 0.0f;
    }
  });
}

// Readies P for a bf16 N×K pack (pairs of k), keeping its storage as reuse_storage does; returns
// the number of panels.
int64_t reuse_storage_bf16(PackedLinear& P, int64_t N, int64_t K) {
  P.N = N;
  P.K = K;
  P.panels.clear();
  const int64_t panels = (N + kPanel - 1) / kPanel, K2 = (K + 1) / 2;
  const size_t need = static_cast<size_t>(panels * K2 * kPanel * 2);
  if (P.panels_bf16.size() < need) P.panels_bf16.resize(need);
  P.bias.assign(static_cast<size_t>(panels * kPanel), 0.0f);
  return panels;
}

// Two rows made into bf16 k pairs on the family's kernel (AVX512_BF16's conversion where the CPU
// has it; the portable rounding gives the same bits).
void interleave_bf16(const Context& ctx, const float* r0, const float* r1, int64_t n, uint32_t* out) {
  if (native_bf16(ctx)) x86::interleave_bf16(r0, r1, n, out);
  else portable::interleave_bf16(r0, r1, n, out);
}
void interleave_bf16(const Context& ctx, const uint16_t* r0, const uint16_t* r1, int64_t n, uint32_t* out) {
  if (native_bf16(ctx)) x86::interleave_bf16(r0, r1, n, out);
  else portable::interleave_bf16(r0, r1, n, out);
}
void bf16_pairs(const Context& ctx, const float* a, int64_t K, uint32_t* out) {
  if (native_bf16(ctx)) x86::bf16_pairs(a, K, out);
  else portable::bf16_pairs(a, K, out);
}

// The bf16 packing, into P's storage: pair (k, k+1) of output n is W'[n][k], W'[n][k+1] (W' as
// in pack_fp32_into), adjacent in a row of W. Each panel's 32 rows are scaled (when asked) and
// rounded into pairs (vectorised), then transposed into the panel's pair rows.
void pack_bf16_into(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias,
                    int64_t N, int64_t K, PackedLinear& P) {
  const int64_t panels = reuse_storage_bf16(P, N, K), K2 = (K + 1) / 2;
  if (bias) std::copy(bias, bias + N, P.bias.begin());
  auto* out = reinterpret_cast<uint32_t*>(P.panels_bf16.data());
  parallel::for_each(panels, ctx.threads, panels * K * kPanel > 262144, [&](int64_t p) {
    const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
    // The panel's rows as pairs, [32][ld]: ld a multiple of 16 plus 16, so that the transposition's
    // walk down a column does not keep to a few L1 sets (as with 1536 pairs, a multiple of 4 KiB).
    const int64_t ld = (K2 + 15) / 16 * 16 + 16;
    static thread_local std::vector<uint32_t> rows;
    static thread_local std::vector<float> scaled;  // one row of W'
    rows.assign(static_cast<size_t>(kPanel * ld), 0u);
    for (int64_t j = 0; j < nc; ++j) {
      const float* w = W + (n0 + j) * K;
      if (row_scale || col_scale) {
        scaled.resize(static_cast<size_t>(K));
        const float rs = row_scale ? row_scale[n0 + j] : 1.0f;
        for (int64_t k = 0; k < K; ++k) scaled[static_cast<size_t>(k)] = rs * w[k] * (col_scale ? col_scale[k] : 1.0f);
        w = scaled.data();
      }
      bf16_pairs(ctx, w, K, rows.data() + j * ld);
    }
    uint32_t* dst = out + p * K2 * kPanel;
    for (int64_t kk = 0; kk < K2; ++kk)
      for (int64_t j = 0; j < kPanel; ++j) dst[kk * kPanel + j] = rows[static_cast<size_t>(j * ld + kk)];
  });
}
// pack_kn_into's bf16 form of B in fp32 (rounded here) or already in bf16.
template <class T>
void pack_pairs_kn(const Context& ctx, const T* B, int64_t ldb, int64_t K, int64_t N, PackedLinear& P) {
  // Panel p's pair row kk is rows 2kk and 2kk+1 of B, columns 32p .. 32p+31, interleaved. Each
  // pair of rows is read whole and interleaved in one call into a buffer, then dealt out to the
  // panels 128 bytes at a time (a call per panel and pair row, reading 128 bytes of each of two
  // rows, took 1.5× the fp32 pack). Tasks of 16 pair rows.
  const int64_t panels = reuse_storage_bf16(P, N, K), K2 = (K + 1) / 2, rows = 16, blocks = (K2 + rows - 1) / rows;
  auto* out = reinterpret_cast<uint32_t*>(P.panels_bf16.data());
  parallel::for_each(blocks, ctx.threads, panels * K * kPanel > 262144, [&](int64_t block) {
    static thread_local AlignedVector<uint32_t> pairs;  // one pair row, zero padded to whole panels
    if (pairs.size() < static_cast<size_t>(panels * kPanel)) pairs.resize(static_cast<size_t>(panels * kPanel));
    std::fill(pairs.begin() + N, pairs.begin() + panels * kPanel, 0u);
    for (int64_t kk = block * rows; kk < std::min(K2, (block + 1) * rows); ++kk) {
      interleave_bf16(ctx, B + 2 * kk * ldb, 2 * kk + 1 < K ? B + (2 * kk + 1) * ldb : nullptr, N, pairs.data());
      for (int64_t p = 0; p < panels; ++p)
        std::memcpy(out + (p * K2 + kk) * kPanel, pairs.data() + p * kPanel, kPanel * sizeof(uint32_t));
    }
  });
}
}  // namespace

PackedLinear pack_linear(const Context& ctx, const float* W, const float* bias, int64_t N, int64_t K) {
  return pack_linear_scaled(ctx, W, nullptr, nullptr, bias, N, K);
}

void pack_linear_into(const Context& ctx, const float* W, const float* bias, int64_t N, int64_t K, PackedLinear& P, bool bf16) {
  if (bf16) pack_bf16_into(ctx, W, nullptr, nullptr, bias, N, K, P);
  else pack_fp32_into(ctx, W, nullptr, nullptr, bias, N, K, P);
}

PackedLinear pack_linear_scaled(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias,
                                int64_t N, int64_t K, bool bf16) {
  PackedLinear P;
  if (bf16) pack_bf16_into(ctx, W, row_scale, col_scale, bias, N, K, P);
  else pack_fp32_into(ctx, W, row_scale, col_scale, bias, N, K, P);
  return P;
}

void patchify_nhwc(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t p, float* out) {
  const int64_t Ho = H / p, Wo = W / p, K = p * p * C;
  parallel::for_each(N * Ho, ctx.threads, N * Ho * Wo * K > 65536, [&](int64_t ni) {
    const int64_t n = ni / Ho, i = ni % Ho;
    for (int64_t j = 0; j < Wo; ++j) {
      float* dst = out + ((n * Ho + i) * Wo + j) * K;
      for (int64_t ky = 0; ky < p; ++ky)  // the p pixels of one patch row are contiguous in NHWC
        std::memcpy(dst + ky * p * C, x + ((n * H + i * p + ky) * W + j * p) * C,
                    static_cast<size_t>(p * C) * sizeof(float));
    }
  });
}

void patchify_nchw(const Context& ctx, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, float* out) {
  const int64_t Ho = H / p, Wo = W / p, K = p * p * C;
  parallel::for_each(N * Ho, ctx.threads, N * Ho * Wo * K > 65536, [&](int64_t ni) {
    const int64_t n = ni / Ho, i = ni % Ho;
    for (int64_t j = 0; j < Wo; ++j) {
      float* dst = out + ((n * Ho + i) * Wo + j) * K;
      for (int64_t ky = 0; ky < p; ++ky)
        for (int64_t kx = 0; kx < p; ++kx)
          for (int64_t c = 0; c < C; ++c)
            dst[(ky * p + kx) * C + c] = x[((n * C + c) * H + i * p + ky) * W + j * p + kx];
    }
  });
}

std::vector<float> conv_weight_to_patch_linear(const float* w, int64_t O, int64_t C, int64_t p) {
  std::vector<float> out(static_cast<size_t>(O * p * p * C));
  conv_weight_to_patch_linear(w, O, C, p, out.data());
  return out;
}

void conv_weight_to_patch_linear(const float* w, int64_t O, int64_t C, int64_t p, float* out) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ky = 0; ky < p; ++ky)
        for (int64_t kx = 0; kx < p; ++kx) out[o * p * p * C + (ky * p + kx) * C + c] = w[((o * C + c) * p + ky) * p + kx];
}

void mean_pool(const float* x, int64_t N, int64_t HW, int64_t C, float* out) {
  thread_local std::vector<double> acc;  // grown once, not allocated per call
  if (acc.size() < static_cast<size_t>(C)) acc.resize(static_cast<size_t>(C));
  for (int64_t n = 0; n < N; ++n) {
    std::fill(acc.begin(), acc.begin() + C, 0.0);
    for (int64_t q = 0; q < HW; ++q) {
      const float* px = x + (n * HW + q) * C;
      for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(c)] += px[c];
    }
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = static_cast<float>(acc[static_cast<size_t>(c)] / static_cast<double>(HW));
  }
}

void nhwc_to_nchw(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, float* out) {
  const int64_t HW = H * W;
  parallel::for_each(N * C, ctx.threads, N * HW * C > 65536, [&](int64_t nc) {
    const int64_t n = nc / C, c = nc % C;
    for (int64_t q = 0; q < HW; ++q) out[(n * C + c) * HW + q] = x[(n * HW + q) * C + c];
  });
}

// ---- training ----

PackedLinear pack_kn(const Context& ctx, const float* B, int64_t ldb, int64_t K, int64_t N, bool bf16) {
  PackedLinear P;
  pack_kn_into(ctx, B, ldb, K, N, P, bf16);
  return P;
}

void pack_kn_into(const Context& ctx, const float* B, int64_t ldb, int64_t K, int64_t N, PackedLinear& P, bool bf16) {
  if (bf16) return pack_pairs_kn(ctx, B, ldb, K, N, P);
  const int64_t panels = reuse_storage(P, N, K);
  // Panel p's row k is B[k][32p .. 32p+31]: a copy of 32 contiguous floats, the last panel's
  // columns past N zeroed (the storage is reused, so nothing else clears them).
  parallel::for_each(panels, ctx.threads, panels * K * kPanel > 262144, [&](int64_t p) {
    const int64_t n0 = p * kPanel, nc = std::min(kPanel, N - n0);
    for (int64_t k = 0; k < K; ++k) {
      float* dst = P.panels.data() + (p * K + k) * kPanel;
      std::memcpy(dst, B + k * ldb + n0, static_cast<size_t>(nc) * sizeof(float));
      if (nc < kPanel) std::memset(dst + nc, 0, static_cast<size_t>(kPanel - nc) * sizeof(float));
    }
  });
}

void pack_kn_into(const Context& ctx, const uint16_t* B, int64_t ldb, int64_t K, int64_t N, PackedLinear& P) {
  pack_pairs_kn(ctx, B, ldb, K, N, P);
}

void unpatchify_nhwc(const Context& ctx, const float* patches, int64_t N, int64_t H, int64_t W, int64_t C, int64_t p, float* x) {
  const int64_t Ho = H / p, Wo = W / p, K = p * p * C;
  if (Ho * p != H || Wo * p != W) std::memset(x, 0, static_cast<size_t>(N * H * W * C) * sizeof(float));
  parallel::for_each(N * Ho, ctx.threads, N * Ho * Wo * K > 65536, [&](int64_t ni) {
    const int64_t n = ni / Ho, i = ni % Ho;
    for (int64_t j = 0; j < Wo; ++j) {
      const float* src = patches + ((n * Ho + i) * Wo + j) * K;
      for (int64_t ky = 0; ky < p; ++ky)
        std::memcpy(x + ((n * H + i * p + ky) * W + j * p) * C, src + ky * p * C,
                    static_cast<size_t>(p * C) * sizeof(float));
    }
  });
}

void unpatchify_nchw(const Context& ctx, const float* patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, float* x) {
  const int64_t Ho = H / p, Wo = W / p, K = p * p * C;
  if (Ho * p != H || Wo * p != W) std::memset(x, 0, static_cast<size_t>(N * C * H * W) * sizeof(float));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const float* src = patches + ((n * Ho + i) * Wo + j) * K;
        for (int64_t ky = 0; ky < p; ++ky)
          for (int64_t kx = 0; kx < p; ++kx)
            for (int64_t c = 0; c < C; ++c)
              x[((n * C + c) * H + i * p + ky) * W + j * p + kx] = src[(ky * p + kx) * C + c];
      }
}

void patch_linear_to_conv_weight_add(const float* lin, int64_t O, int64_t C, int64_t p, float* w) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ky = 0; ky < p; ++ky)
        for (int64_t kx = 0; kx < p; ++kx)
          w[((o * C + c) * p + ky) * p + kx] += lin[o * p * p * C + (ky * p + kx) * C + c];
}

}  // namespace convnext::kernels
