// The dispatcher: each entry point of kernels.h runs the family its Context names, on the
// threads the Context gives. Callers decide both (the model from its ExecutionContext);
// default_context() is the process default, for callers that have none.

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/cpu.h"
#include "core/parallel.h"
#include "kernels/kernels.h"
#include "io/safetensors.h"  // bf16_to_f32
#include "kernels/x86/activation_gradient.h"
#include "kernels/x86/bf16_maps.h"
#include "kernels/x86/weight_gradient.h"

namespace convnext::kernels {

Family selected_family() { return selected_isa() == Isa::Avx512 ? Family::Avx512 : Family::Portable; }

Context default_context() { return {parallel::max_threads(), selected_family()}; }

const char* family_name(Family f) { return f == Family::Avx512 ? "avx512" : "portable"; }

bool native_bf16(const Context& ctx) { return ctx.family == Family::Avx512 && cpu_has_avx512_bf16(); }
bool native_int8(const Context& ctx) { return ctx.family == Family::Avx512 && cpu_has_avx512_vnni(); }

namespace {
bool use_x86(const Context& ctx) { return ctx.family == Family::Avx512; }
}  // namespace

void linear(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
            bool accumulate, Activation act, const TileEpilogue* after, const ActivationGradient* grad) {
  if (grad) {
    // In registers where the x86 fp32 or bf16 GEMM can; elsewhere the same values from a tile
    // epilogue (activation_and_grad_rows), then the caller's.
    const bool native = W.is_bf16() ? native_bf16(ctx) : !W.is_int8() && use_x86(ctx);
    if (native && x86::act_and_grad_in_registers(act)) {
      if (W.is_bf16()) x86::linear_bf16(ctx.threads, M, A, lda, W, C, ldc, act, after, *grad);
      else x86::linear(ctx.threads, M, A, lda, W, C, ldc, act, after, *grad);
      return;
    }
    const TileEpilogue tile = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
      float* c = C + m0 * ldc + n0;
      activation_and_grad_rows(ctx.serial(), act, m1 - m0, n1 - n0, c, ldc, c, ldc, grad->d + m0 * grad->ldd + n0, grad->ldd);
      if (after) (*after)(m0, m1, n0, n1);
    };
    return linear(ctx, M, A, lda, W, C, ldc, false, Activation::Linear, &tile);
  }
  // The x86 fp32 and bf16 GEMMs call `after` on each tile as they finish it.
  if (W.is_int8()) {
    if (native_int8(ctx)) x86::linear_int8(ctx.threads, M, A, lda, W, C, ldc, accumulate, act);
    else portable::linear_int8(ctx.threads, M, A, lda, W, C, ldc, accumulate, act);
  } else if (W.is_bf16()) {
    if (native_bf16(ctx)) return x86::linear_bf16(ctx.threads, M, A, lda, W, C, ldc, accumulate, act, after);
    portable::linear_bf16(ctx.threads, M, A, lda, W, C, ldc, accumulate, act);
  } else {
    if (use_x86(ctx)) return x86::linear(ctx.threads, M, A, lda, W, C, ldc, accumulate, act, after);
    portable::linear(ctx.threads, M, A, lda, W, C, ldc, accumulate, act);
  }
  // The GEMMs without tiles of their own hand C over afterwards, in row blocks on the call's threads.
  if (after && M > 0 && W.N > 0) {
    constexpr int64_t kRows = 64;
    parallel::for_each((M + kRows - 1) / kRows, ctx.threads, M * W.N > 32768, [&](int64_t b) {
      (*after)(b * kRows, std::min(M, (b + 1) * kRows), 0, W.N);
    });
  }
}

void layer_norm(const Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta,
                float eps, float* y) {
  if (use_x86(ctx)) x86::layer_norm(ctx.threads, x, rows, C, gamma, beta, eps, y);
  else portable::layer_norm(ctx.threads, x, rows, C, gamma, beta, eps, y);
}

void dwconv7(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
             const float* bias, float* y) {
  if (use_x86(ctx)) x86::dwconv7(ctx.threads, x, N, H, W, C, w49, bias, y);
  else portable::dwconv7(ctx.threads, x, N, H, W, C, w49, bias, y);
}

void dwconv7_ln(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
                const float* bias, float eps, float* y) {
  if (use_x86(ctx)) x86::dwconv7_ln(ctx.threads, x, N, H, W, C, w49, bias, eps, y);
  else portable::dwconv7_ln(ctx.threads, x, N, H, W, C, w49, bias, eps, y);
}

void dwconv7_ln_rows(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
                     const float* bias, float eps, int64_t r0, int64_t r1, float* y) {
  if (use_x86(ctx)) x86::dwconv7_ln_rows(x, N, H, W, C, w49, bias, eps, r0, r1, y);
  else portable::dwconv7_ln_rows(x, N, H, W, C, w49, bias, eps, r0, r1, y);
}

void activation(const Context& ctx, Activation act, float* x, int64_t n) {
  if (act == Activation::Linear) return;
  if (!use_x86(ctx)) return portable::activation(ctx.threads, act, x, n);
  constexpr int64_t kChunk = 16384;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel::for_each(chunks, ctx.threads, chunks > 1, [&](int64_t c) {
    x86::activation(1, act, x + c * kChunk, std::min(kChunk, n - c * kChunk));
  });
}

// ---- training ----

void linear_at(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
               bool accumulate) {
  if (B.is_bf16()) {
    if (native_bf16(ctx)) x86::linear_at_bf16(ctx.threads, M, A, lda, B, C, ldc, accumulate);
    else portable::linear_at_bf16(ctx.threads, M, A, lda, B, C, ldc, accumulate);
    return;
  }
  if (use_x86(ctx)) x86::linear_at(ctx.threads, M, A, lda, B, C, ldc, accumulate);
  else portable::linear_at(ctx.threads, M, A, lda, B, C, ldc, accumulate);
}

namespace {
// The weight gradient of every operand type (dy and x in fp32, or either kept in bf16): the x86
// grouped kernel where it pays; on fewer pixels, or another family, x packed whole (pack_kn),
// then linear_at on the family's kernels.
template <class DY, class X>
void weight_gradient_of(const Context& ctx, int64_t M, const DY* dy, int64_t ldy, int64_t N, const X* x, int64_t ldx, int64_t K,
                        float* dW, bool bf16) {
  if ((bf16 ? native_bf16(ctx) : use_x86(ctx)) && x86::grouped_weight_gradient_pays(M)) {
    if constexpr (std::is_same_v<DY, float> && std::is_same_v<X, float>)  // (a bf16 map means bf16)
      if (!bf16) return x86::weight_gradient(ctx.threads, M, dy, ldy, N, x, ldx, K, dW);
    return x86::weight_gradient_bf16(ctx.threads, M, dy, ldy, N, x, ldx, K, dW);
  }
  static thread_local PackedLinear xp;  // the storage is kept from call to call
  if constexpr (std::is_same_v<X, float>) pack_kn_into(ctx, x, ldx, M, K, xp, bf16);
  else pack_kn_into(ctx, x, ldx, M, K, xp);
  linear_at(ctx, N, dy, ldy, xp, dW, K, /*accumulate=*/true);
}
}  // namespace

void weight_gradient(const Context& ctx, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                     int64_t K, float* dW, bool bf16) {
  weight_gradient_of(ctx, M, dy, ldy, N, x, ldx, K, dW, bf16);
}

// ---- maps kept in bf16 ----

namespace {
// Rows of a map kept in bf16 widened to fp32 (exact) into buf, rows cols floats apart.
const float* widened(const Context& ctx, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld, AlignedVector<float>& buf) {
  if (buf.size() < static_cast<size_t>(rows * cols)) buf.resize(static_cast<size_t>(rows * cols));
  float* out = buf.data();
  parallel::for_each(rows, ctx.threads, rows * cols > 65536, [&](int64_t r) {
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = io::bf16_to_f32(x[r * ld + c]);
  });
  return out;
}
// … into the calling thread's buffer.
const float* widened(const Context& ctx, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld) {
  static thread_local AlignedVector<float> buf;
  return widened(ctx, x, rows, cols, ld, buf);
}
}  // namespace

namespace {
void round_portably(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = io::f32_to_bf16(x[i]);  // portable::bf16_pairs' rounding
}
// round_to_bf16 as a function of the row, for kernels that keep an output in bf16 (RoundRow).
RoundRow rounding_into(const Context& ctx, uint16_t* out) {
  return {out, native_bf16(ctx) ? &x86::round_to_bf16 : &round_portably};
}
}  // namespace

void round_to_bf16(const Context& ctx, const float* x, int64_t n, uint16_t* out) {
  rounding_into(ctx, out).round(x, n, out);
}

void multiply_rows_to_bf16(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx,
                           uint16_t* out, int64_t ldo, double* sums) {
  if (native_bf16(ctx)) return x86::multiply_rows_to_bf16(rows, cols, y, ldy, x, ldx, out, ldo, sums);
  multiply_rows(ctx, rows, cols, y, ldy, x, ldx, sums);
  for (int64_t r = 0; r < rows; ++r) round_to_bf16(ctx, y + r * ldy, cols, out + r * ldo);
}

void multiply_rows_to_bf16(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const uint16_t* x,
                           int64_t ldx, uint16_t* out, int64_t ldo, double* sums) {
  if (native_bf16(ctx)) return x86::multiply_rows_to_bf16(rows, cols, y, ldy, x, ldx, out, ldo, sums);
  // A buffer of its own, not widened()'s thread buffer: this runs as a TileConsumer, whose GEMM
  // may be reading a map widened() holds for the calling thread.
  static thread_local AlignedVector<float> xw;
  multiply_rows_to_bf16(ctx, rows, cols, y, ldy, widened(ctx.serial(), x, rows, cols, ldx, xw), cols, out, ldo, sums);
}

void linear_bf16_out(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad) {
  if (!W.is_bf16()) throw std::invalid_argument("linear_bf16_out: the weights are not in bf16 form");
  if (native_bf16(ctx) && x86::act_and_grad_in_registers(act))
    return x86::linear_bf16_out(ctx.threads, M, A, lda, W, C, ldc, act, grad);
  // Elsewhere: into fp32 (the calling thread's buffers), each finished tile rounded into C (and
  // act'(v) into grad.d16).
  static thread_local AlignedVector<float> h, d;
  const int64_t N = W.N;
  if (h.size() < static_cast<size_t>(M * N)) h.resize(static_cast<size_t>(M * N));
  if (grad.d16 && d.size() < static_cast<size_t>(M * N)) d.resize(static_cast<size_t>(M * N));
  float* hp = h.data();
  const ActivationGradient g32 = grad.d16 ? ActivationGradient{d.data(), N} : grad;
  const TileEpilogue round = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t m = m0; m < m1; ++m) {
      round_to_bf16(ctx.serial(), hp + m * N + n0, n1 - n0, C + m * ldc + n0);
      if (grad.d16) round_to_bf16(ctx.serial(), g32.d + m * N + n0, n1 - n0, grad.d16 + m * grad.ldd + n0);
    }
  };
  linear(ctx, M, A, lda, W, hp, N, false, act, &round, &g32);
}

namespace {
// The x86 kernel multiplies A's rows in place as k pairs: whole pairs, at 4-byte boundaries.
bool whole_pairs(const uint16_t* A, int64_t lda, int64_t K) {
  return K % 2 == 0 && lda % 2 == 0 && reinterpret_cast<uintptr_t>(A) % 4 == 0;
}
}  // namespace

void linear_bf16_out(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, uint16_t* C,
                     int64_t ldc, Activation act, const ActivationGradient& grad) {
  if (!W.is_bf16()) throw std::invalid_argument("linear_bf16_out: the weights are not in bf16 form");
  if (native_bf16(ctx) && x86::act_and_grad_in_registers(act) && whole_pairs(A, lda, W.K))
    return x86::linear_bf16_out(ctx.threads, M, A, lda, W, C, ldc, act, grad);
  linear_bf16_out(ctx, M, widened(ctx, A, M, W.K, lda), W.K, W, C, ldc, act, grad);
}

void linear(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
            bool accumulate, Activation act, const TileEpilogue* after) {
  if (!W.is_bf16()) throw std::invalid_argument("linear on a bf16 map: the weights are not in bf16 form");
  const bool pairs = whole_pairs(A, lda, W.K);
  if (native_bf16(ctx) && pairs) return x86::linear_bf16(ctx.threads, M, A, lda, W, C, ldc, accumulate, act, after);
  linear(ctx, M, widened(ctx, A, M, W.K, lda), W.K, W, C, ldc, accumulate, act, after);
}

void weight_gradient(const Context& ctx, int64_t M, const float* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                     int64_t K, float* dW) {
  weight_gradient_of(ctx, M, dy, ldy, N, x, ldx, K, dW, /*bf16=*/true);
}

void weight_gradient(const Context& ctx, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                     int64_t K, float* dW) {
  weight_gradient_of(ctx, M, dy, ldy, N, x, ldx, K, dW, /*bf16=*/true);
}

void weight_gradient(const Context& ctx, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                     int64_t K, float* dW) {
  weight_gradient_of(ctx, M, dy, ldy, N, x, ldx, K, dW, /*bf16=*/true);
}

void linear_at(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
               bool accumulate) {
  if (!B.is_bf16()) throw std::invalid_argument("linear_at on a bf16 map: B is not in bf16 form");
  if (native_bf16(ctx)) return x86::linear_at_bf16(ctx.threads, M, A, lda, B, C, ldc, accumulate);
  // A is [K][M] here: B.K rows of M.
  linear_at(ctx, M, widened(ctx, A, B.K, M, lda), M, B, C, ldc, accumulate);
}

void linear_tiles(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume) {
  if (M <= 0 || W.N <= 0) return;
  if (W.is_bf16() && native_bf16(ctx)) return x86::linear_bf16_tiles(ctx.threads, M, A, lda, W, consume);
  const int64_t N = W.N;
  static thread_local AlignedVector<float> c;
  if (c.size() < static_cast<size_t>(M * N)) c.resize(static_cast<size_t>(M * N));
  float* cp = c.data();
  const TileEpilogue hand_over = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    consume(OutputTile{m0, m1, n0, n1, cp + m0 * N + n0, N});
  };
  linear(ctx, M, A, lda, W, cp, N, false, Activation::Linear, &hand_over);
}

void linear_tiles(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume) {
  if (!W.is_bf16()) throw std::invalid_argument("linear_tiles on a bf16 map: the weights are not in bf16 form");
  if (M <= 0 || W.N <= 0) return;
  if (native_bf16(ctx) && whole_pairs(A, lda, W.K)) return x86::linear_bf16_tiles(ctx.threads, M, A, lda, W, consume);
  linear_tiles(ctx, M, widened(ctx, A, M, W.K, lda), W.K, W, consume);
}

void layer_norm_train(const Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma,
                      const float* beta, float eps, float* y, float* xhat, float* rstd) {
  if (use_x86(ctx)) x86::layer_norm_train(ctx.threads, x, rows, C, gamma, beta, eps, y, xhat, rstd);
  else portable::layer_norm_train(ctx.threads, x, rows, C, gamma, beta, eps, y, xhat, rstd);
}

void dwconv7_ln_train(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
                      const float* bias, const float* gamma, const float* beta, float eps, float* y, uint16_t* y16, float* xhat,
                      float* rstd) {
  if ((y == nullptr) == (y16 == nullptr)) throw std::invalid_argument("dwconv7_ln_train: give y or y16");
  const int64_t WC = W * C;
  parallel::for_each(N * H, ctx.threads, N * H * WC > 16384, [&](int64_t r) {
    static thread_local AlignedVector<float> row;  // y of one image row, to be rounded
    if (y16 && row.size() < static_cast<size_t>(WC)) row.resize(static_cast<size_t>(WC));
    float* yr = y16 ? row.data() : y + r * WC;
    if (use_x86(ctx)) x86::dwconv7_ln_train_rows(x, N, H, W, C, w49, bias, gamma, beta, eps, r, r + 1, yr, xhat + r * WC, rstd + r * W);
    else portable::dwconv7_ln_train_rows(x, N, H, W, C, w49, bias, gamma, beta, eps, r, r + 1, yr, xhat + r * WC, rstd + r * W);
    if (y16) round_to_bf16(ctx.serial(), yr, WC, y16 + r * WC);
  });
}

void layer_norm_backward(const Context& ctx, const float* dy, const float* xhat, const float* rstd, int64_t rows,
                         int64_t C, const float* gamma, float* dx, float* dgamma, float* dbeta) {
  if (use_x86(ctx)) x86::layer_norm_backward(ctx.threads, dy, xhat, rstd, rows, C, gamma, dx, dgamma, dbeta);
  else portable::layer_norm_backward(ctx.threads, dy, xhat, rstd, rows, C, gamma, dx, dgamma, dbeta);
}

void dwconv7_backward(const Context& ctx, const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C,
                      const float* w49, float* dx, float* dw49, float* dbias) {
  // dx is the forward convolution of dy with the 49 taps in reverse order (the kernel mirrored).
  AlignedVector<float> mirrored(static_cast<size_t>(49 * C));
  for (int64_t t = 0; t < 49; ++t)
    std::copy(w49 + (48 - t) * C, w49 + (49 - t) * C, mirrored.begin() + t * C);
  if (use_x86(ctx)) x86::dwconv7(ctx.threads, dy, N, H, W, C, mirrored.data(), nullptr, dx, /*accumulate=*/true);
  else portable::dwconv7(ctx.threads, dy, N, H, W, C, mirrored.data(), nullptr, dx, /*accumulate=*/true);
  if (use_x86(ctx)) x86::dwconv7_weight_grad(ctx.threads, x, dy, N, H, W, C, dw49, dbias);
  else portable::dwconv7_weight_grad(ctx.threads, x, dy, N, H, W, C, dw49, dbias);
}

void activation_and_grad(const Context& ctx, Activation act, const float* x, float* y, float* d, int64_t n) {
  if (use_x86(ctx)) x86::activation_and_grad(ctx.threads, act, x, y, d, n);
  else portable::activation_and_grad(ctx.threads, act, x, y, d, n);
}

void activation_backward(const Context& ctx, Activation act, const float* h, const float* dy, float* dx, int64_t n) {
  if (use_x86(ctx)) x86::activation_backward(ctx.threads, act, h, dy, dx, n);
  else portable::activation_backward(ctx.threads, act, h, dy, dx, n);
}

double fp32_peak_gflops(const Context& ctx) {
  return use_x86(ctx) ? x86::fp32_peak_gflops(ctx.threads) : portable::fp32_peak_gflops(ctx.threads);
}

void activation_and_grad_rows(const Context& ctx, Activation act, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                              float* y, int64_t ldy, float* d, int64_t ldd) {
  if (use_x86(ctx)) x86::activation_and_grad_rows(act, rows, cols, x, ldx, y, ldy, d, ldd);
  else portable::activation_and_grad_rows(act, rows, cols, x, ldx, y, ldy, d, ldd);
}

void multiply_rows(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx,
                   double* sums) {
  if (use_x86(ctx)) x86::multiply_rows(rows, cols, y, ldy, x, ldx, sums);
  else portable::multiply_rows(rows, cols, y, ldy, x, ldx, sums);
}

void adamw_update(const Context& ctx, const AdamWScalars& s, float* p, float* g, float* m, float* v, int64_t n, bool zero_g) {
  // Chunks of 16K values shared among the threads (the update is memory-bound: 32 bytes moved per
  // parameter); a chunk's values are independent, so the split changes no result.
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  parallel::for_each(chunks, ctx.threads, chunks > 4, [&](int64_t c) {
    const int64_t k0 = c * kChunk, k = std::min(n, k0 + kChunk) - k0;
    if (use_x86(ctx)) x86::adamw_update(s, p + k0, g + k0, m + k0, v + k0, k, zero_g);
    else portable::adamw_update(s, p + k0, g + k0, m + k0, v + k0, k, zero_g);
  });
}

void column_sums(const Context& ctx, const float* x, int64_t rows, int64_t C, float* out) {
  if (use_x86(ctx)) x86::column_sums(ctx.threads, x, rows, C, out);
  else portable::column_sums(ctx.threads, x, rows, C, out);
}

void layer_scale_backward(const Context& ctx, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, float* dz, float* dgamma, float* dsum) {
  if (use_x86(ctx)) x86::layer_scale_backward(ctx.threads, G, z, row_scale, per, gamma, rows, C, dz, dgamma, dsum);
  else portable::layer_scale_backward(ctx.threads, G, z, row_scale, per, gamma, rows, C, dz, dgamma, dsum);
}

void layer_scale_backward(const Context& ctx, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, uint16_t* dz, float* dgamma, float* dsum) {
  const RoundRow into = rounding_into(ctx, dz);
  if (use_x86(ctx)) x86::layer_scale_backward(ctx.threads, G, z, row_scale, per, gamma, rows, C, nullptr, dgamma, dsum, into);
  else portable::layer_scale_backward(ctx.threads, G, z, row_scale, per, gamma, rows, C, nullptr, dgamma, dsum, into);
}

}  // namespace convnext::kernels
