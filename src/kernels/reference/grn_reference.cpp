// Reference GRN, forward and backward, written out from the definitions in double (grn.h).
// The backward goes through the Jacobian of N with respect to G term by term, not the fast
// kernel's simplified sum; the tests check it against finite differences of the forward.
#include <cmath>
#include <vector>

#include "kernels/grn.h"

namespace convnext::kernels::reference {

namespace {

// One image's G_c = ‖x[:, c]‖₂ and N_c = G_c / (mean G + ε).
void norms(const float* x, int64_t P, int64_t C, std::vector<double>& G, std::vector<double>& Nx, double& D) {
  G.assign(static_cast<size_t>(C), 0.0);
  Nx.assign(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t p = 0; p < P; ++p) s += static_cast<double>(x[p * C + c]) * x[p * C + c];
    G[static_cast<size_t>(c)] = std::sqrt(s);
  }
  double mean = 0;
  for (double g : G) mean += g;
  D = mean / static_cast<double>(C) + kGrnEps;
  for (int64_t c = 0; c < C; ++c) Nx[static_cast<size_t>(c)] = G[static_cast<size_t>(c)] / D;
}

}  // namespace

void grn(const float* x, int64_t N, int64_t P, int64_t C, const float* gamma, const float* beta, float* y) {
  std::vector<double> G, Nx;
  double D;
  for (int64_t n = 0; n < N; ++n) {
    const float* xi = x + n * P * C;
    norms(xi, P, C, G, Nx, D);
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) {
        const double v = xi[p * C + c];
        y[(n * P + p) * C + c] = static_cast<float>(gamma[c] * (v * Nx[static_cast<size_t>(c)]) + beta[c] + v);
      }
  }
}

void grn_backward(const float* x, const float* dy, int64_t N, int64_t P, int64_t C, const float* gamma, float* dx,
                  float* dgamma, float* dbeta) {
  std::vector<double> G, Nx, dN(static_cast<size_t>(C)), dG(static_cast<size_t>(C));
  double D;
  for (int64_t n = 0; n < N; ++n) {
    const float* xi = x + n * P * C;
    const float* gi = dy + n * P * C;
    norms(xi, P, C, G, Nx, D);
    // y = γ·x·N + β + x: dN_c = Σ_p dy·γ·x, dγ_c += Σ_p dy·x·N_c, dβ_c += Σ_p dy.
    for (int64_t c = 0; c < C; ++c) {
      double sxy = 0, sy = 0;
      for (int64_t p = 0; p < P; ++p) {
        sxy += static_cast<double>(gi[p * C + c]) * xi[p * C + c];
        sy += gi[p * C + c];
      }
      dN[static_cast<size_t>(c)] = gamma[c] * sxy;
      if (dgamma) dgamma[c] += static_cast<float>(sxy * Nx[static_cast<size_t>(c)]);
      if (dbeta) dbeta[c] += static_cast<float>(sy);
    }
    // N_c = G_c / D, D = (1/C) Σ G + ε: ∂N_c/∂G_k = [c = k] / D − G_c / (C·D²).
    for (int64_t k = 0; k < C; ++k) {
      double s = 0;
      for (int64_t c = 0; c < C; ++c)
        s += dN[static_cast<size_t>(c)] * ((c == k ? 1.0 / D : 0.0) - G[static_cast<size_t>(c)] / (static_cast<double>(C) * D * D));
      dG[static_cast<size_t>(k)] = s;
    }
    // G_k = ‖x[:, k]‖: ∂G_k/∂x[p,k] = x[p,k] / G_k (0 at G_k = 0, as torch).
    for (int64_t p = 0; p < P; ++p)
      for (int64_t c = 0; c < C; ++c) {
        const double g = G[static_cast<size_t>(c)];
        const double v = xi[p * C + c], d = gi[p * C + c];
        dx[(n * P + p) * C + c] =
            static_cast<float>(d * (1.0 + gamma[c] * Nx[static_cast<size_t>(c)]) + (g > 0 ? dG[static_cast<size_t>(c)] * v / g : 0.0));
      }
  }
}

}  // namespace convnext::kernels::reference
