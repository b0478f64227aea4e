// The entry points every kernel family (portable::, x86::) implements; kernels.h includes this
// inside each family's namespace, so it has no include guard and includes nothing. `threads`:
// how many threads the call may use (its caller's kernels::Context; 1 = the calling thread).
// NOLINTBEGIN(llvm-header-guard)
void linear(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
            Activation act, const TileEpilogue* after = nullptr);
void linear_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act, const TileEpilogue* after = nullptr);
void linear_int8(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& W, float* C, int64_t ldc, bool accumulate,
                 Activation act);
void layer_norm(int threads, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps, float* y);
void dwconv7(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias, float* y,
             bool accumulate = false);
void dwconv7_ln(int threads, const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                float eps, float* y);
void dwconv7_ln_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                     float eps, int64_t r0, int64_t r1, float* y);
void activation(int threads, Activation act, float* x, int64_t n);
// Training.
void linear_at(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc, bool accumulate);
void linear_at_bf16(int threads, int64_t M, const float* A, int64_t lda, const PackedLinear& B, float* C, int64_t ldc,
                    bool accumulate);
// out[j] = bf16(r0[j]) | bf16(r1[j]) << 16 for j < n (r1 null: its half 0), rounded to nearest
// even: two rows of K made into the k pairs the bf16 GEMM multiplies.
void interleave_bf16(const float* r0, const float* r1, int64_t n, uint32_t* out);
// out[j] = r0[j] | r1[j] << 16 for j < n (r1 null: its half 0): the same pairs from two rows
// already in bf16.
void interleave_bf16(const uint16_t* r0, const uint16_t* r1, int64_t n, uint32_t* out);
// out[i] = bf16(a[2i]) | bf16(a[2i+1]) << 16 for i < ceil(K/2) (a[K] read as 0 when K is odd): a
// row of K made into its k pairs.
void bf16_pairs(const float* a, int64_t K, uint32_t* out);
void layer_norm_train(int threads, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta, float eps,
                      float* y, float* xhat, float* rstd);
// layer_norm_train of dwconv7's output image rows r0 … r1−1 of the N·H (y, xhat and rstd from
// their starts: row r0's W·C values, W statistics, first), the convolution written into xhat and
// normalised there while in cache. On the calling thread.
void dwconv7_ln_train_rows(const float* x, int64_t N, int64_t H, int64_t W, int64_t C, const float* w49, const float* bias,
                           const float* gamma, const float* beta, float eps, int64_t r0, int64_t r1, float* y, float* xhat,
                           float* rstd);
void layer_norm_backward(int threads, const float* dy, const float* xhat, const float* rstd, int64_t rows, int64_t C,
                         const float* gamma, float* dx, float* dgamma, float* dbeta);
void dwconv7_weight_grad(int threads, const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C, float* dw49,
                         float* dbias);
void activation_backward(int threads, Activation act, const float* h, const float* dy, float* dx, int64_t n);
void activation_and_grad(int threads, Activation act, const float* x, float* y, float* d, int64_t n);
void activation_and_grad_rows(Activation act, int64_t rows, int64_t cols, const float* x, int64_t ldx, float* y, int64_t ldy,
                              float* d, int64_t ldd);
void multiply_rows(int64_t rows, int64_t cols, float* y, int64_t ldy, const float* x, int64_t ldx, double* sums);
void column_sums(int threads, const float* x, int64_t rows, int64_t C, float* out);
// With dz16.out, dz is rounded into it row by row (dz16.round) rather than stored in fp32.
void layer_scale_backward(int threads, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, float* dz, float* dgamma, float* dsum,
                          const RoundRow& dz16 = {});
void adamw_update(const AdamWScalars& s, float* p, float* g, float* m, float* v, int64_t n, bool zero_g);
// Measured fp32 multiply-add throughput (GFLOP/s, 2 per FMA) on `threads` threads.
double fp32_peak_gflops(int threads);
// NOLINTEND(llvm-header-guard)
