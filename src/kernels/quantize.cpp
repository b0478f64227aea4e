// int8 weights and activations for the int8 GEMM (kernels.h: pack_linear_int8, QuantRow).
//
// Weights: symmetric per output channel, so a channel's scale absorbs whatever was folded into
// its row (a layer scale) and no channel's range is set by another's. Activations: asymmetric
// per row, computed when the GEMM runs (dynamic), so a row after a GELU (min about −0.17, max
// several units) uses all 256 levels instead of half of them.
#include <algorithm>
#include <cmath>

#include "core/parallel.h"
#include "kernels/kernels.h"

namespace convnext::kernels {

PackedLinear pack_linear_int8(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias,
                              int64_t N, int64_t K) {
  PackedLinear P;
  P.N = N;
  P.K = K;
  const int64_t panels = (N + kPanel - 1) / kPanel, K4 = (K + 3) / 4;
  P.panels_s8.assign(static_cast<size_t>(panels * K4 * kPanel * 4), 0);
  P.bias.assign(static_cast<size_t>(panels * kPanel), 0.0f);
  P.scale_s8.assign(static_cast<size_t>(panels * kPanel), 0.0f);
  P.colsum_s8.assign(static_cast<size_t>(panels * kPanel), 0);
  if (bias) std::copy(bias, bias + N, P.bias.begin());
  parallel::for_each(N, ctx.threads, N * K > 65536, [&](int64_t n) {
    const int64_t p = n / kPanel, j = n % kPanel;
    const float rs = row_scale ? row_scale[n] : 1.0f;
    const auto folded = [&](int64_t k) { return rs * W[n * K + k] * (col_scale ? col_scale[k] : 1.0f); };
    float maxabs = 0.0f;
    for (int64_t k = 0; k < K; ++k) maxabs = std::max(maxabs, std::fabs(folded(k)));
    if (!(maxabs > 0.0f)) return;  // a zero row: q = 0, scale 0
    const float inv = 127.0f / maxabs;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const int32_t q = std::clamp(static_cast<int32_t>(std::nearbyint(folded(k) * inv)), -127, 127);
      P.panels_s8[static_cast<size_t>(((p * K4 + k / 4) * kPanel + j) * 4 + k % 4)] = static_cast<int8_t>(q);
      sum += q;
    }
    P.scale_s8[static_cast<size_t>(n)] = maxabs / 127.0f;
    P.colsum_s8[static_cast<size_t>(n)] = sum;
  });
  return P;
}

}  // namespace convnext::kernels
