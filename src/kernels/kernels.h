// The compute kernels. They take pointers, sizes and strides and know nothing of models.
// Layout is channels-last (NHWC): a feature map is `rows` pixels of C contiguous floats.
// Each entry point takes a Context (threads, family) from its caller and runs the AVX-512
// kernels (x86/) or portable C++; reference/ holds the plain twins that tests compare against.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "convnext/config.h"  // Activation

namespace convnext::kernels {

// The kernel families: AVX-512 (x86/) and portable C++ (portable.cpp).
enum class Family { Portable, Avx512 };

// How a kernel call runs, decided by its caller and passed in (never guessed inside a kernel):
// on how many threads (1: the calling thread alone, as inside a parallel loop of the caller's)
// and with which family. The model builds it from the public ExecutionContext.
struct Context {
  int threads = 1;
  Family family = Family::Portable;
  Context serial() const { return {1, family}; }
};
// For callers with no context of their own (tests, tools): parallel::max_threads() threads and
// the family core/cpu.h's selected_isa() picks.
Context default_context();
// The family selected_isa() picks on this CPU.
Family selected_family();
const char* family_name(Family f);  // "avx512" or "portable"

constexpr int64_t kPanel = 32;  // output columns per packed weight panel

// Storage on 64-byte boundaries: a microkernel loads a panel's row of weights (128 bytes) as two
// 64-byte vectors every step, and from plain malloc (16-byte aligned) each of them would straddle
// two cache lines. Loading a model frees each weight tensor as its packed copy is made; Tensor
// allocates 128 bytes to spare so that glibc can place the next aligned panel in that freed chunk
// (without them, ConvNeXt-T's peak RSS went from 148 to 232 MB: no freed chunk was large enough).
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) {
    if (void* p = std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64)) return static_cast<T*>(p);
    throw std::bad_alloc();
  }
  void deallocate(T* p, size_t) { std::free(p); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
template <class T>
using AlignedVector = std::vector<T, Aligned64<T>>;

// The weight of an nn.Linear (out × in = N × K) packed for the GEMM once at load:
// panel p holds, for every k, the 32 weights of outputs 32p..32p+31 (zero padded).
struct PackedLinear {
  int64_t N = 0, K = 0;
  AlignedVector<float> panels;  // fp32: ceil(N/32) × K × 32
  std::vector<float> bias;    // ceil(N/32)·32, zero padded
  // bf16 instead (panels empty): ceil(N/32) × ceil(K/2) × 32 × 2, the two k of a pair adjacent,
  // as vdpbf16ps consumes them. The GEMM then rounds A to bf16 too and accumulates in fp32.
  AlignedVector<uint16_t> panels_bf16;
  bool is_bf16() const { return !panels_bf16.empty(); }
  // int8 instead (see pack_linear_int8): ceil(N/32) × ceil(K/4) × 32 × 4 signed bytes, the four k
  // of a quad adjacent, as vpdpbusd consumes them; per output column its scale (W ≈ scale·q) and
  // the sum of its quantized weights (for the activations' zero point).
  AlignedVector<int8_t> panels_s8;
  std::vector<float> scale_s8;
  std::vector<int32_t> colsum_s8;
  bool is_int8() const { return !panels_s8.empty(); }
};
PackedLinear pack_linear(const Context& ctx, const float* W, const float* bias, int64_t N, int64_t K);
// The same into `out`, reusing its storage (see pack_kn_into): training repacks every step. With
// `bf16` the panels hold W rounded to bfloat16 (bf16 training: linear() then rounds A too).
void pack_linear_into(const Context& ctx, const float* W, const float* bias, int64_t N, int64_t K, PackedLinear& out,
                      bool bf16 = false);
// The same for W'[n][k] = row_scale[n] · W[n][k] · col_scale[k] (either scale may be null): how
// a LayerNorm's γ (columns) or a layer scale (rows) is folded in without a copy of W. With
// `bf16` the panels hold W' rounded to bfloat16 (round to nearest even).
PackedLinear pack_linear_scaled(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias,
                                int64_t N, int64_t K, bool bf16 = false);
// int8: W' (as above) quantized per output row n, symmetric: scale[n] = max_k |W'[n,k]| / 127,
// q = round(W' / scale[n]) in [−127, 127] (round to nearest even). linear() then quantizes each
// row of A on the fly (QuantRow: asymmetric uint8, its own scale and zero point, no calibration),
// multiplies in int8 with int32 sums, and dequantizes with the bias and activation fused.
PackedLinear pack_linear_int8(const Context& ctx, const float* W, const float* row_scale, const float* col_scale, const float* bias,
                              int64_t N, int64_t K);
// One row of activations quantized to uint8: a ≈ scale · (q − zero). The range is the row's
// [min(0, min a), max(0, max a)], so 0 is exact; scale = (hi − lo) / 255, inv = 255 / (hi − lo),
// zero = round(−lo · inv), q = clamp(round(a · inv) + zero, 0, 255). A row of zeros: scale 0, q 0.
// Every family computes these same float operations, so they quantize to the same integers.
struct QuantRow {
  float scale = 0.0f, inv = 0.0f;
  int32_t zero = 0;
};
// (Inline: the int8 GEMM calls it once per row of A.)
inline QuantRow quant_params(float lo, float hi) {
  lo = lo < 0.0f ? lo : 0.0f;
  hi = hi > 0.0f ? hi : 0.0f;
  QuantRow q;
  if (!(hi > lo)) return q;  // all zeros (or NaN): q = 0, scale 0
  q.scale = (hi - lo) / 255.0f;
  q.inv = 255.0f / (hi - lo);
  const float z = __builtin_nearbyintf(-lo * q.inv);  // std::nearbyint, without <cmath> here
  q.zero = z < 0.0f ? 0 : z > 255.0f ? 255 : static_cast<int32_t>(z);
  return q;
}
// True when this CPU runs the int8 GEMM natively (AVX512_VNNI); elsewhere a portable kernel
// gives the same numbers, slowly.
bool native_int8(const Context& ctx);

// The fp32 GFLOP/s this family's multiply-adds reach on ctx.threads threads, measured now (about
// 20 ms): independent FMAs in registers, so the machine's limit under its current load and clock.
double fp32_peak_gflops(const Context& ctx);
// True when this CPU runs the bf16 GEMM natively (AVX512_BF16); elsewhere bf16 weights work
// through a portable kernel that gives the same numbers, slowly.
bool native_bf16(const Context& ctx);

// Work on a finished block of C while it is still in cache: called with rows [m0, m1) and columns
// [n0, n1) once their values are final, on one of the call's threads (the x86 fp32 and bf16 GEMMs:
// the one that computed them, right after), the blocks together covering C once: what a pass over
// C afterwards would do, without C's trip to memory and back. May run concurrently on other blocks.
using TileEpilogue = std::function<void(int64_t m0, int64_t m1, int64_t n0, int64_t n1)>;

// Where a GEMM also writes the derivative of its activation: d[m][n] = act'(v) for each finished
// value v of C (bias added), C getting act(v) as usual, both computed while v is in a register
// (training's pwconv1 keeps act(h) and act'(h); a tile epilogue would read h back). d has C's
// shape, rows ldd floats apart. The same floats as activation_and_grad. The x86 fp32 and bf16
// GEMMs do it in registers for the activations whose derivative they have there; everything
// else gets the same values through a tile epilogue.
struct ActivationGradient {
  float* d;
  int64_t ldd;
  // linear_bf16_out only (bf16 training, V1): act'(v) rounded to bf16 into d16 (rows ldd values
  // apart) instead of d (null then), as torch.autocast keeps h in bf16 for the activation's
  // backward; dh = (dz·W2)⊙act'(h), read by GEMMs that round it to bf16, needs no more.
  uint16_t* d16 = nullptr;
};

// Where a kernel keeps an output in bf16 instead of fp32: each row of it rounded by `round` (the
// family's bf16 rounding, as round_to_bf16) into `out` (null: the output stays fp32).
struct RoundRow {
  uint16_t* out = nullptr;
  void (*round)(const float* x, int64_t n, uint16_t* out) = nullptr;
};

// The scalars of one AdamW step (see adamw_update).
struct AdamWScalars {
  float grad_scale, w1, b2, w2, bc2_sqrt, eps, step_size, keep;
};

// C[M,N] = act(A[M,K]·Wᵀ + b), or with `accumulate` C += A·Wᵀ + b (act must then be Linear).
// Rows of A and C are lda / ldc floats apart. Threads split the output over rows and columns.
// `after`, when given, runs on each finished block of C (see TileEpilogue).
// `grad`, when given, receives act'(v) of every value (accumulate must then be false; `after` sees
// C's act(v) once both are written).
void linear(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act, const TileEpilogue* after = nullptr, const ActivationGradient* grad = nullptr);

// y[r,:] = (x[r,:] − mean) / sqrt(var + eps) · gamma + beta for each of `rows` rows of C floats
// (biased variance, two passes, as F.layer_norm). x and y may alias.
void layer_norm(const Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y);

// Depthwise 7×7 convolution, stride 1, zero padding 3, NHWC. Weights as [49][C] (tap-major).
void dwconv7(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y);

// y = LayerNorm(dwconv7(x)) with no affine (γ, β are folded into the next layer): the block's
// first two steps, normalising each output row while it is still in cache.
void dwconv7_ln(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y);
// The same for the output image rows r0 … r1−1 of the N·H rows only, on the calling thread; y
// receives them from its start (row r0's W·C values first). The fused block runs it per tile.
void dwconv7_ln_rows(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                     float eps, int64_t r0, int64_t r1, float* y);

// x = act(x), in place.
void activation(const Context& ctx, Activation act, float* x, int64_t n);

// Gathers non-overlapping p×p patches for a stride-p convolution as GEMM rows of K = p·p·C,
// ordered [ky][kx][c]. Trailing rows and columns that do not fill a patch are dropped (floor).
void patchify_nhwc(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, int64_t p, float* out);
void patchify_nchw(const Context& ctx, const float* x, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, float* out);
// Conv weight [O][C][p][p] → Linear weight [O][p·p·C] in the patch order above.
std::vector<float> conv_weight_to_patch_linear(const float* w, int64_t O, int64_t C, int64_t p);
void conv_weight_to_patch_linear(const float* w, int64_t O, int64_t C, int64_t p, float* out);  // into O·p·p·C floats

// out[n,c] = mean over the H·W pixels of x[n,:,:,c] (accumulated in double).
void mean_pool(const float* x, int64_t N, int64_t HW, int64_t C, float* out);

// NHWC <-> NCHW.
void nhwc_to_nchw(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, float* out);

// ---- Training: what the backward pass needs -------------------------------------------------
// B [K][N] (rows ldb floats apart) packed so that linear(M, A, lda, pack_kn(B), C) computes
// C = A·B (zero bias). For a layer y = x·Wᵀ: dx = dy·W is linear with pack_kn(W, K=out, N=in).
// With `bf16`, B is rounded to bfloat16 into the pair layout of pack_linear_scaled's bf16 form
// (bf16 training: the GEMMs of the backward pass too take bf16 inputs, fp32 sums).
PackedLinear pack_kn(const Context& ctx, const float* B, int64_t ldb, int64_t K, int64_t N, bool bf16 = false);
// The same into `out`, reusing its storage: its vectors only ever grow, so packing every step of
// training into one buffer costs no allocation (a fresh 40 MB buffer per call meant page faults
// and the kernel zeroing pages: a fifth of a ConvNeXt-T training step).
void pack_kn_into(const Context& ctx, const float* B, int64_t ldb, int64_t K, int64_t N, PackedLinear& out, bool bf16 = false);
// C[M,N] (+)= Aᵀ·B with A stored [K][M] (rows lda floats apart), B packed by pack_kn: the
// weight gradient dW = dyᵀ·x without transposing dy. With B in bf16, A is rounded to bf16 as
// well (round to nearest even) and the products are summed in fp32.
void linear_at(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc, bool accumulate);
// dW[N][K] += Σ_m dy[m][n] · x[m][k] over M rows (dy rows ldy floats apart, x rows ldx, dW rows
// K): a linear layer's weight gradient dyᵀ·x over the pixels. The sum over m runs in fixed groups
// of pixels (its order depends on M only, not on the thread count). With `bf16`, dy and x are
// rounded to bf16 (round to nearest even) and the products summed in fp32.
void weight_gradient(const Context& ctx, int64_t M, const float* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                     int64_t K, float* dW, bool bf16 = false);
// ---- bf16 training: maps kept in bf16 ------------------------------------------------------
// Mixed precision rounds every GEMM input to bf16; a map that feeds GEMMs only (act(h), read by
// pwconv2 and dW2; dh, read by dW1 and dt = dh·W1) can be kept in bf16 instead: the same bits in
// half the bytes, and nothing for its consumers to convert. These give or take such a map
// (uint16_t: a bfloat16's bits, rows ld values apart), W in bf16 form (pack_linear_into /
// pack_kn_into with bf16), and each gives the same bits as its fp32 form on the map widened to
// fp32 (exact). Where they cannot run natively they work in buffers of the calling thread, which
// the call's team reads: a TileEpilogue or TileConsumer must not call them.
//
// linear() with an ActivationGradient, C kept in bf16: act(v) rounded to nearest even as the
// family's bf16 GEMM rounds its inputs (the same bits as linear() into fp32 followed by that
// rounding; d = act'(v) in fp32 as before, or with grad.d16 rounded to bf16 the same way).
void linear_bf16_out(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, uint16_t* C, int64_t ldc,
                     Activation act, const ActivationGradient& grad);
// … and on A kept in bf16 too (bf16 training's LayerNorm output t, which pwconv1 alone reads).
void linear_bf16_out(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, uint16_t* C,
                     int64_t ldc, Activation act, const ActivationGradient& grad);
// linear() on A kept in bf16.
void linear(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc,
            bool accumulate, Activation act, const TileEpilogue* after = nullptr);
// weight_gradient(…, bf16 = true) on x kept in bf16.
void weight_gradient(const Context& ctx, int64_t M, const float* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                     int64_t K, float* dW);
// weight_gradient(…, bf16 = true) on dy kept in bf16.
void weight_gradient(const Context& ctx, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const float* x, int64_t ldx,
                     int64_t K, float* dW);
// … and on both kept in bf16.
void weight_gradient(const Context& ctx, int64_t M, const uint16_t* dy, int64_t ldy, int64_t N, const uint16_t* x, int64_t ldx,
                     int64_t K, float* dW);
// linear_at() on A kept in bf16 (B in bf16 form).
void linear_at(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
               bool accumulate);
// A finished block of a GEMM's output handed over instead of stored: rows [m0, m1), columns
// [n0, n1), element (m, n) at data[(m − m0)·ld + (n − n0)], in a buffer that the consumer may
// change (no other tile overlaps it) and that is reused once the consumer returns.
struct OutputTile {
  int64_t m0, m1, n0, n1;
  float* data;
  int64_t ld;
};
using TileConsumer = std::function<void(const OutputTile&)>;
// C = A·Wᵀ + b handed to `consume` tile by tile (on the call's threads, the tiles covering C once)
// and never stored whole: for an output of which only a function is kept (bf16 training's
// dh = (dz·W2)⊙act'(h), kept in bf16 beside its column sums), without C's trip to memory and
// back. The x86 bf16 GEMM computes each tile into a buffer of its thread; elsewhere linear()
// fills a buffer of the calling thread and hands it over as its TileEpilogue gets it (the same
// row tiles either way, so TileColumnSums holds).
void linear_tiles(const Context& ctx, int64_t M, const float* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume);
// … on A kept in bf16.
void linear_tiles(const Context& ctx, int64_t M, const uint16_t* A, int64_t lda, const PackedLinear& W, const TileConsumer& consume);
// pack_kn_into's bf16 form of B kept in bf16.
void pack_kn_into(const Context& ctx, const uint16_t* B, int64_t ldb, int64_t K, int64_t N, PackedLinear& out);
// n floats rounded to bf16 as the family's bf16 GEMM rounds its inputs.
void round_to_bf16(const Context& ctx, const float* x, int64_t n, uint16_t* out);
// multiply_rows kept in bf16: out[r][c] = y[r][c]·x[r][c] rounded as round_to_bf16 (rows ldo
// apart), sums as multiply_rows' (the same bits as multiply_rows followed by round_to_bf16; y may
// be overwritten). bf16 training's dh = (dz·W2)⊙act'(h) from each tile of its GEMM, in one pass
// over the tile. On the calling thread.
void multiply_rows_to_bf16(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx,
                           uint16_t* out, int64_t ldo, double* sums = nullptr);
// … with x kept in bf16 (act'(h) of bf16 training; widened exactly).
void multiply_rows_to_bf16(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const uint16_t* x,
                           int64_t ldx, uint16_t* out, int64_t ldo, double* sums = nullptr);

// LayerNorm (affine) that also writes x̂ = (x − mean)/σ and 1/σ of each row for the backward.
void layer_norm_train(const Context& ctx, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps,
                      float* y, float* xhat, float* rstd);
// The block's depthwise conv and its LayerNorm in one pass for training: layer_norm_train of
// dwconv7(x), the convolution's output never stored (each image row is normalised while in
// cache, in x̂'s place). y in fp32, or, with y16 instead, rounded as round_to_bf16 (bf16
// training's pwconv1 input, which its GEMM would round anyway). The same bits as the two calls.
void dwconv7_ln_train(const Context& ctx, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
                      const float* bias, const float* gamma, const float* beta, float eps, float* y, uint16_t* y16, float* xhat,
                      float* rstd);
// LayerNorm backward from x̂ and 1/σ: dx (may alias dy); dgamma += Σ dy·x̂, dbeta += Σ dy (either may be null).
void layer_norm_backward(const Context& ctx, const float* dy, const float* xhat, const float* rstd, int64_t rows, int64_t C,
                         const float* gamma, float* dx, float* dgamma, float* dbeta);
// Depthwise 7×7 backward. dx += the convolution of dy with the taps mirrored (added: the block's
// input gradient joins the residual's where it lies, without a pass of its own);
// dw49 [49][C] += Σ x·dy per tap; dbias += Σ dy (may be null).
void dwconv7_backward(const Context& ctx, const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49,
                      float* dx, float* dw49, float* dbias);
// y = act(x) and d = act'(x) in one pass (d may alias x): the training pass keeps the derivative
// rather than x, and the exact GELU's two share their normal tail and Gaussian (half the work of
// activation() now and activation_backward() later). The same values as those two.
void activation_and_grad(const Context& ctx, Activation act, const float* x, float* y, float* d, int64_t n);
// dx = dy · act'(h), h being the activation's input. dx may alias dy.
void activation_backward(const Context& ctx, Activation act, const float* h, const float* dy, float* dx, int64_t n);
// activation_and_grad over a block of `rows` rows of `cols` values, rows ldx, ldy and ldd floats
// apart: a GEMM tile's epilogue, the activation chosen once for the block. On the calling thread.
void activation_and_grad_rows(const Context& ctx, Activation act, int64_t rows, int64_t cols, const float* x, int64_t ldx,
                              float* y, int64_t ldy, float* d, int64_t ldd);
// y[r][c] *= x[r][c] over a block of `rows` rows of `cols` values (rows ldy, ldx floats apart): a
// GEMM tile times a saved factor (dh · act'(h)). With `sums`, also sums[c] += each product (in
// double, rows in order; the same bits in every family). On the calling thread.
void multiply_rows(const Context& ctx, int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx,
                   double* sums = nullptr);

// Column sums of a GEMM's output gathered by its tile epilogue while each tile is in cache (the
// bias gradient of the layer whose input gradient the GEMM computes, without a pass of its own
// over a map of tens of megabytes): each tile adds its rows' sums, in double, into the slot of its
// first row; finish() adds the slots to `out` in row order. A GEMM's row tiles depend on M and the
// kernel family only, never on the thread count, and so does the result. Row tiles must start at
// least kSlotRows apart: the x86 GEMMs' tiles do (a single tile, or tiles of more than 64 rows),
// and so do linear()'s 64-row blocks for the others; finish() throws if two tiles met in a slot.
class TileColumnSums {
 public:
  static constexpr int64_t kSlotRows = 64;
  // For an M × N output; the slots are reused from call to call.
  void reset(int64_t M, int64_t N);
  // The sums of the tile starting at row m0, for columns [n0, n1): zeroed, to be added to (by
  // multiply_rows or the caller). Safe to call from the GEMM's threads at once.
  double* tile(int64_t m0, int64_t n0, int64_t n1);
  // out[n] += Σ over the slots (in row order) of their sums, rounded to float once.
  void finish(float* out) const;

 private:
  int64_t N_ = 0, slots_ = 0;
  AlignedVector<double> sums_;  // 64-byte aligned: with N a multiple of 8, every slot's row too
  std::unique_ptr<std::atomic<int64_t>[]> first_row_;  // the tile's m0 per slot, −1 when unused
  int64_t capacity_ = 0;
  std::atomic<bool> clash_{false};
};
// out[c] += Σ over rows of x[r, c].
void column_sums(const Context& ctx, const float* x, int64_t rows, int64_t C, float* out);
// The backward of y = x + s_r·(γ ⊙ z) on z's side, s_r one factor per `per` rows (drop path):
// dz = G·s_r·γ (gamma null: γ = 1), dgamma += Σ_r G·s_r·z (when gamma and dgamma are given),
// dsum += Σ_r dz (the bias gradient of the layer that made z). One pass over G and z.
void layer_scale_backward(const Context& ctx, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, float* dz, float* dgamma, float* dsum);
// … with dz kept in bf16, rounded as round_to_bf16 (bf16 training: dz feeds dW2's and dh's GEMMs
// only, which round it anyway); the sums from dz in fp32 as before.
void layer_scale_backward(const Context& ctx, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, uint16_t* dz, float* dgamma, float* dsum);
// AdamW's update of n parameters as torch.optim.AdamW's single-tensor loop does it in float32,
// the step's scalars computed by the caller (in double, as Python does):
//   g ← g·grad_scale;  m ← m + w1·(g − m);  v ← b2·v + w2·g·g
//   p ← p·keep − step_size · m / (√v / bc2_sqrt + eps);  then g ← 0 when zero_g
// (w1 = 1 − β1, w2 = 1 − β2, bc2_sqrt = √(1 − β2^t), step_size = lr / (1 − β1^t), keep = 1 − lr·wd).
// Every family computes the same floats in the same order (no fused multiply-adds).
void adamw_update(const Context& ctx, const AdamWScalars& s, float* p, float* g, float* m, float* v, int64_t n, bool zero_g);
// The inverses of patchify_*: patch rows scattered back to the map; pixels outside every patch
// (the floor division's leftover border) get 0.
void unpatchify_nhwc(const Context& ctx, const float* patches, int64_t N, int64_t H, int64_t W, int64_t C, int64_t p, float* x);
void unpatchify_nchw(const Context& ctx, const float* patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, float* x);
// The inverse of conv_weight_to_patch_linear, added into w: [O][p·p·C] → [O][C][p][p].
void patch_linear_to_conv_weight_add(const float* lin, int64_t O, int64_t C, int64_t p, float* w);


namespace reference {
// Plain loops in double precision, for tests. W is the nn.Linear weight [N][K].
void linear(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, const float* bias, float* C,
            int64_t ldc, bool accumulate, Activation act);
// The int8 GEMM as linear() computes it with a pack_linear_int8 weight, in plain loops: the
// weights and each row of A quantized as documented there, exact int32 sums, then
// C = fma(float(acc − zero·colsum), scale_a·scale_w, bias) and the activation (in double).
void linear_int8(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* W, const float* bias, float* C,
                 int64_t ldc, bool accumulate, Activation act);
void layer_norm(const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y);
// A row's mean and 1/sqrt(biased variance + eps), two passes in double (what layer_norm uses).
struct RowStats {
  double mean, rstd;
};
RowStats row_stats(const float* x, int64_t C, float eps);
// Depthwise k×k, padding k/2, weight as PyTorch stores it: [C][1][k][k].
void dwconv(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w, int64_t k, const float* bias,
            float* y);
double activation(Activation act, double x);
// A stride-p, kernel-p convolution on NCHW input with PyTorch's [O][C][p][p] weight; NCHW output.
void patch_conv_nchw(const float* x, int64_t N, int64_t C, int64_t H, int64_t W, const float* w, const float* b,
                     int64_t O, int64_t p, float* y);
// d act(x) / dx.
double activation_grad(Activation act, double x);
// LayerNorm backward from its input x: dx, and dgamma/dbeta (+=).
void layer_norm_backward(const float* x, const float* dy, int64_t rows, int64_t C, const float* gamma, float eps,
                         float* dx, float* dgamma, float* dbeta);
// Depthwise k×k backward with PyTorch's [C][1][k][k] weight: dx written, dw and dbias added.
void dwconv_backward(const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, const float* w,
                     int64_t k, float* dx, float* dw, float* dbias);
}  // namespace reference

// The kernel families: each of portable:: and x86:: implements every entry point of
// family.h (the dispatcher above picks one); portable:: also has the scalar activations.
namespace portable {
#include "kernels/family.h"
float activation_scalar(Activation act, float x);
float activation_grad_scalar(Activation act, float x);
}  // namespace portable

namespace x86 {
#include "kernels/family.h"
}  // namespace x86

}  // namespace convnext::kernels
