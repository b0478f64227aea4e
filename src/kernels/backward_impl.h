// The backward-pass kernels of training (family.h's layer_norm_train, layer_norm_backward,
// dwconv7_weight_grad, column_sums), written once as plain loops over contiguous channels
// and compiled twice: in portable.cpp's family for any CPU and in x86/backward_avx512.cpp with
// AVX-512 enabled, where the compiler vectorises the same loops 16 floats wide. Include it
// inside the family's namespace. Threads split rows; per-row reductions (the LayerNorm and
// depthwise parameter gradients) go to one accumulator per fixed slice of rows (reduction_slice),
// summed in double in slice order at the end, so the result depends neither on how many threads
// ran nor on which thread took which slice.
// The including file includes "core/parallel.h", <cmath> and <vector> first (this file is
// included inside a namespace, so it includes nothing itself).

// Rows per slice of a reduction over `rows` rows: at most kReductionSlices slices, or one when
// the work is too small for threads.
constexpr int64_t kReductionSlices = 8;
inline int64_t reduction_slice(int64_t rows, bool worth_threads) {
  return worth_threads ? std::max<int64_t>(1, (rows + kReductionSlices - 1) / kReductionSlices) : std::max<int64_t>(1, rows);
}

// The slices' partial sums: n zeroed doubles for the calling thread, reused from call to call
// (training calls these kernels hundreds of times a step, and a fresh megabyte-sized vector each
// time came back from the system as zeroed pages: page faults). The kernels here do not nest.
inline double* zeroed_partials(int64_t n) {
  static thread_local AlignedVector<double> v;  // 64-byte aligned: the kernels add 8 doubles at a time
  v.assign(static_cast<size_t>(n), 0.0);
  return v.data();
}

// Slices of two partial sums each (C doubles for `a`, then C for `b`), added in slice order into a
// and b (either may be null).
inline void add_paired_partials(const double* part, int64_t slices, int64_t C, float* a, float* b) {
  for (int64_t c = 0; c < C; ++c) {
    double sa = 0, sb = 0;
    for (int64_t t = 0; t < slices; ++t) {
      sa += part[static_cast<size_t>(t * 2 * C + c)];
      sb += part[static_cast<size_t>(t * 2 * C + C + c)];
    }
    if (a) a[c] += static_cast<float>(sa);
    if (b) b[c] += static_cast<float>(sb);
  }
}

// ---- LayerNorm of training ----
// One row each way, as plain loops; a family may bring its own rows (CONVNEXT_OWN_LAYER_NORM_ROWS:
// the x86 one sums 16 lanes wide, where these loops' sums are one dependent chain of C additions
// the compiler may not reorder). The drivers below (threads, the parameter sums' slices) are one.
#ifndef CONVNEXT_OWN_LAYER_NORM_ROWS
// x̂ = (x − mean)/σ into hr (may alias xr: each value is read before it is replaced) and
// y = x̂·γ + β into yr; returns 1/σ.
inline float ln_train_row(const float* xr, int64_t C, const float* gamma, const float* beta, float eps, float* hr, float* yr) {
  float s = 0;
  for (int64_t c = 0; c < C; ++c) s += xr[c];
  const float mean = s / static_cast<float>(C);
  float v = 0;
  for (int64_t c = 0; c < C; ++c) v += (xr[c] - mean) * (xr[c] - mean);
  const float rs = 1.0f / std::sqrt(v / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) {
    const float h = (xr[c] - mean) * rs;
    hr[c] = h;
    yr[c] = h * gamma[c] + beta[c];
  }
  return rs;
}

// dx = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ (g: C floats of scratch) into dxr (may alias
// dyr); accg += dy·x̂, accb += dy, per column.
inline void ln_backward_row(const float* dyr, const float* hr, int64_t C, const float* gamma, float rs, float* g, float* accg,
                            float* accb, float* dxr) {
  float s1 = 0, s2 = 0;
  for (int64_t c = 0; c < C; ++c) {
    const float gc = dyr[c] * gamma[c];
    g[c] = gc;
    s1 += gc;
    s2 += gc * hr[c];
    accg[c] += dyr[c] * hr[c];
    accb[c] += dyr[c];
  }
  const float m1 = s1 / static_cast<float>(C), m2 = s2 / static_cast<float>(C);
  for (int64_t c = 0; c < C; ++c) dxr[c] = (g[c] - m1 - hr[c] * m2) * rs;
}
#endif

// LayerNorm forward that keeps what its backward needs: x̂ = (x − mean)/σ and 1/σ per row.
void layer_norm_train(int threads, const float* x, int64_t rows, int64_t C, const float* gamma, const float* beta,
                                  float eps, float* y, float* xhat, float* rstd) {
  parallel::for_each(rows, threads, rows * C > 16384, [&](int64_t r) {
    rstd[r] = ln_train_row(x + r * C, C, gamma, beta, eps, xhat + r * C, y + r * C);
  });
}

// dx = (g − mean(g) − x̂·mean(g·x̂))/σ with g = dy·γ, per row; dgamma += Σ dy·x̂, dbeta += Σ dy
// (float over runs of 64 rows per column, double across runs and fixed slices of rows).
void layer_norm_backward(int threads, const float* dy, const float* xhat, const float* rstd, int64_t rows, int64_t C,
                                     const float* gamma, float* dx, float* dgamma, float* dbeta) {
  const int64_t slice = reduction_slice(rows, rows * C > 16384), slices = (rows + slice - 1) / slice;
  double* const part = zeroed_partials(slices * 2 * C);
  parallel::for_chunks(rows, slice, [&](int64_t r0, int64_t r1) {
    const int64_t t = r0 / slice;
    AlignedVector<float> g(static_cast<size_t>(C)), accg(static_cast<size_t>(C), 0.0f), accb(static_cast<size_t>(C), 0.0f);
    int64_t since_flush = 0;
    auto flush = [&] {
      double* pg = part + static_cast<size_t>(t) * 2 * C;
      for (int64_t c = 0; c < C; ++c) {
        pg[c] += accg[static_cast<size_t>(c)];
        pg[C + c] += accb[static_cast<size_t>(c)];
        accg[static_cast<size_t>(c)] = accb[static_cast<size_t>(c)] = 0.0f;
      }
    };
    for (int64_t r = r0; r < r1; ++r) {
      ln_backward_row(dy + r * C, xhat + r * C, C, gamma, rstd[r], g.data(), accg.data(), accb.data(), dx + r * C);
      if (++since_flush == 64) {  // short float sums, long double ones
        flush();
        since_flush = 0;
      }
    }
    flush();
  }, threads);
  add_paired_partials(part, slices, C, dgamma, dbeta);
}

// The depthwise weight gradient's slices of partial sums (49 taps then the bias, C each) added in
// slice order into dw49 [49][C] and dbias (may be null).
inline void add_dwconv7_partials(const double* part, int64_t slices, int64_t C, float* dw49, float* dbias) {
  const int64_t P = 50 * C;
  for (int64_t q = 0; q < P; ++q) {
    double s = 0;
    for (int64_t t = 0; t < slices; ++t) s += part[t * P + q];
    if (q < 49 * C) dw49[q] += static_cast<float>(s);
    else if (dbias) dbias[q - 49 * C] += static_cast<float>(s);
  }
}

// The depthwise weight gradient's sums: float over the pixels of a run of kDwFloatRows output
// rows, double across the runs of a slice of dwconv7_slice(rows) rows, then across slices in
// order. Slices of at least 64 rows (and at most kReductionSlices slices): their partials (50·C
// doubles each) stay small next to the maps when rows are few (stage 4: one slice, 300 KB, not 8
// and 2.4 MB).
constexpr int64_t kDwFloatRows = 8;
inline int64_t dwconv7_slice(int64_t rows) {
  return std::max<int64_t>(64, (rows + kReductionSlices - 1) / kReductionSlices);
}

// The depthwise 7×7 weight and bias gradients: dw49[tap][c] += Σ x(shifted by tap)·dy, db += Σ dy.
// (The x86 family has its own, register-blocked, with the same sums in the same order.)
#ifndef CONVNEXT_OWN_DWCONV7_WEIGHT_GRAD
void dwconv7_weight_grad(int threads, const float* x, const float* dy, int64_t N, int64_t H, int64_t W, int64_t C,
                                     float* dw49, float* dbias) {
  const int64_t rows = N * H;
  const int64_t slice = dwconv7_slice(rows), slices = (rows + slice - 1) / slice;
  const int64_t P = 50 * C;  // 49 taps + bias
  double* const part = zeroed_partials(slices * P);
  parallel::for_chunks(rows, slice, [&](int64_t r0, int64_t r1) {
    const int64_t t = r0 / slice;
    std::vector<float> acc(static_cast<size_t>(P), 0.0f);
    for (int64_t r = r0; r < r1; ++r) {  // output rows of one image; float sums over a run of rows
      const int64_t n = r / H, i = r % H;
      for (int64_t j = 0; j < W; ++j) {
        const float* g = dy + ((n * H + i) * W + j) * C;
        float* ab = acc.data() + 49 * C;
        for (int64_t c = 0; c < C; ++c) ab[c] += g[c];
        for (int64_t ky = 0; ky < 7; ++ky) {
          const int64_t yy = i + ky - 3;
          if (yy < 0 || yy >= H) continue;
          for (int64_t kx = 0; kx < 7; ++kx) {
            const int64_t xx = j + kx - 3;
            if (xx < 0 || xx >= W) continue;
            const float* in = x + ((n * H + yy) * W + xx) * C;
            float* a = acc.data() + (ky * 7 + kx) * C;
            for (int64_t c = 0; c < C; ++c) a[c] += in[c] * g[c];
          }
        }
      }
      if ((r - r0 + 1) % kDwFloatRows && r + 1 < r1) continue;  // the run goes on
      double* p = part + static_cast<size_t>(t) * P;
      for (int64_t q = 0; q < P; ++q) {
        p[q] += acc[static_cast<size_t>(q)];
        acc[static_cast<size_t>(q)] = 0.0f;
      }
    }
  }, threads);
  add_dwconv7_partials(part, slices, C, dw49, dbias);
}
#endif

// The backward of y = x + s_r·(γ ⊙ z) for z's side (s_r one factor per `per` rows: drop path's):
// dz = G·s_r·γ (γ null: 1), dgamma += Σ_r G·s_r·z (when gamma), dsum += Σ_r dz. One pass over
// G and z for what took three (dz twice, once for each sum) and two column sums; the same floats
// and sums as those passes and column_sums.
void layer_scale_backward(int threads, const float* G, const float* z, const float* row_scale, int64_t per,
                          const float* gamma, int64_t rows, int64_t C, float* dz, float* dgamma, float* dsum,
                          const RoundRow& dz16) {
  const int64_t slice = reduction_slice(rows, rows * C > 65536), slices = (rows + slice - 1) / slice;
  double* const part = zeroed_partials(slices * 2 * C);
  parallel::for_chunks(rows, slice, [&](int64_t r0, int64_t r1) {
    double* pg = part + static_cast<size_t>(r0 / slice * 2 * C);
    double* ps = pg + C;
    std::vector<float> row(dz16.out ? static_cast<size_t>(C) : 0);  // a row of dz, to be rounded
    for (int64_t r = r0; r < r1; ++r) {
      const float sc = row_scale[r / per];
      const float* gr = G + r * C;
      float* dr = dz16.out ? row.data() : dz + r * C;
      if (gamma) {
        const float* zr = z + r * C;
        for (int64_t c = 0; c < C; ++c) {
          const float gs = gr[c] * sc;
          pg[c] += gs * zr[c];
          dr[c] = gs * gamma[c];
          ps[c] += dr[c];
        }
      } else {
        for (int64_t c = 0; c < C; ++c) {
          dr[c] = gr[c] * sc;
          ps[c] += dr[c];
        }
      }
      if (dz16.out) dz16.round(dr, C, dz16.out + r * C);
    }
  }, threads);
  add_paired_partials(part, slices, C, gamma ? dgamma : nullptr, dsum);
}

// out[c] += Σ_r x[r, c] (bias gradients), in double across rows.
void column_sums(int threads, const float* x, int64_t rows, int64_t C, float* out) {
  const int64_t slice = reduction_slice(rows, rows * C > 65536), slices = (rows + slice - 1) / slice;
  double* const part = zeroed_partials(slices * C);
  parallel::for_chunks(rows, slice, [&](int64_t r0, int64_t r1) {
    double* p = part + static_cast<size_t>(r0 / slice * C);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = 0; c < C; ++c) p[c] += x[r * C + c];
  }, threads);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t t = 0; t < slices; ++t) s += part[static_cast<size_t>(t * C + c)];
    out[c] += static_cast<float>(s);
  }
}
