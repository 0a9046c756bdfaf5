## CUDA kernels of the kernel contract for one shape family: ${cvtype}, D=${D}, ${dtype}, any
## number of components M (a run-time argument of every kernel, after n).  Rendered by
## em/specializer/render.py; compiled by pycuda (SourceModule, no_extern_c) or, in the CI check,
## by nvcc -cubin.  Every variant in `variants` gets its own entry points; their parameter lists
## come from `sig` (em.backends.cuda_backend.KERNELS declares them once).
## A pass over a chunk of n rows is two launches: estep_<v> (log rho -> responsibilities in a
## chunk x M buffer, per-sample log-likelihood) then stats_<v> (N_k, S1_k, S2_k in float64).
<% T = "float" if dtype == "float32" else "double" %>\
// em generated kernels: cvtype=${cvtype} D=${D} dtype=${dtype}, M at run time
// variants: ${", ".join(v.name for v in variants)}
typedef ${T} T;
#define D ${D}

// Parameters (prepared on the host in T): c [D] data centre; mu [M][D] centred means; P: diag
// [M][D] sqrt(precisions), full [M][D][D] upper Cholesky factor of the precision; lc [M] log
// constants.  Both forms subtract the mean first, so a sample equal to a tight component's mean
// scores exactly however far from c it lies.

// log rho of sample x (a row of X, centred here on c) for component k; no D-sized local array
__device__ __forceinline__ T log_rho(const T* __restrict__ x, const T* __restrict__ c, int k,
                                     const T* __restrict__ mu, const T* __restrict__ P,
                                     const T* __restrict__ lc) {
    T q = 0;
% if cvtype == "diag":
    const T* m = mu + (size_t)k * D;
    const T* p = P + (size_t)k * D;
    for (int d = 0; d < D; ++d) { const T u = ((x[d] - c[d]) - m[d]) * p[d]; q += u * u; }
% else:
    // y_j = sum_{i <= j} (x_i - mu_i) U_ij ; q = sum_j y_j^2   (no D-sized local array)
    const T* m = mu + (size_t)k * D;
    const T* U = P + (size_t)k * D * D;
    for (int j = 0; j < D; ++j) {
        T y = 0;
        for (int i = 0; i <= j; ++i) y += ((x[i] - c[i]) - m[i]) * U[(size_t)i * D + j];
        q += y * y;
    }
% endif
    return lc[k] - (T)0.5 * q;
}

<%def name="kernels(v)">\
// ---------------------------------------------------------------- variant ${v.name}
// one thread per sample: log rho for every component into R, then responsibilities in place;
// ll[i] = w_n * log-likelihood (hard: classification likelihood, one-hot R)
extern "C" __global__ void __launch_bounds__(${v.block})
estep_${v.name}(${sig["estep"]}) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T* x = X + (n0 + i) * D;
    T* r = R + (size_t)i * M;
    T mx = -INFINITY;
    int arg = 0;
    for (int k = 0; k < M; ++k) {
        const T l = log_rho(x, c, k, mu, P, lc);
        r[k] = l;
        if (l > mx) { mx = l; arg = k; }
    }
    const double wn = w ? w[n0 + i] : 1.0;
    if (hard) {
        for (int k = 0; k < M; ++k) r[k] = 0;
        r[arg] = (T)wn;
        ll[i] = wn * (double)mx;
        return;
    }
    double s = 0.0;
    for (int k = 0; k < M; ++k) { const T e = exp(r[k] - mx); r[k] = e; s += (double)e; }
    ll[i] = wn * ((double)mx + log(s));
    const T scale = (T)(wn / s);
    for (int k = 0; k < M; ++k) r[k] *= scale;
}

// statistics of a chunk: entry e of N_k (e = 0), S1_k (1..D), S2_k (diag: D+1..2D; full: the
// D*D matrix) for component k = blockIdx.y, about the component's mean c + sh_k (sh [M][D]:
// the centred means, rounded to T), so the moments never cancel.
% if v.stats == "owner":
// One thread owns an entry and loops over all rows of the chunk (no atomics).
% else:
// Rows are split among ${v.split} slices (blockIdx.z); slices add with atomicAdd (double).
% endif
<% E = 1 + D + (D if cvtype == "diag" else D * D) %>\
extern "C" __global__ void __launch_bounds__(${v.block})
stats_${v.name}(${sig["stats"]}) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    const int k = blockIdx.y;
    if (e >= ${E}) return;
    int a = -1, b = -1;                  // which data columns the entry multiplies
    if (e >= 1 && e <= D) a = e - 1;
% if cvtype == "diag":
    else if (e > D) { a = e - 1 - D; b = a; }
% else:
    else if (e > D) { a = (e - 1 - D) / D; b = (e - 1 - D) % D; }
% endif
% if v.stats == "owner":
    const int r0 = 0, r1 = n;
% else:
    const int per = (n + ${v.split} - 1) / ${v.split};
    const int r0 = blockIdx.z * per, r1 = min(n, r0 + per);
% endif
    double s = 0.0;
    for (int i = r0; i < r1; ++i) {
        const T r = R[(size_t)i * M + k];
        if (r == 0) continue;
        T v = r;
        if (a >= 0) v *= (X[(n0 + i) * D + a] - c[a]) - sh[(size_t)k * D + a];
        if (b >= 0) v *= (X[(n0 + i) * D + b] - c[b]) - sh[(size_t)k * D + b];
        s += (double)v;
    }
% if v.stats == "owner":
    acc[(size_t)k * ${E} + e] += s;
% else:
    atomicAdd(acc + (size_t)k * ${E} + e, s);
% endif
}

// scoring, one thread per sample: mode 0 log-likelihood, 1 also log posteriors [n][M], 2 argmax
extern "C" __global__ void __launch_bounds__(${v.block})
score_${v.name}(${sig["score"]}) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T* x = X + (n0 + i) * D;
    T mx = -INFINITY;
    int best = 0;
    for (int k = 0; k < M; ++k) {
        const T l = log_rho(x, c, k, mu, P, lc);
        if (l > mx) { mx = l; best = k; }
    }
    if (mode == 2) { arg[i] = best; return; }
    double s = 0.0;
    for (int k = 0; k < M; ++k) s += exp((double)(log_rho(x, c, k, mu, P, lc) - mx));
    const double l = (double)mx + log(s);
    ll[i] = l;
    if (mode == 1)
        for (int k = 0; k < M; ++k) post[(size_t)i * M + k] = (double)log_rho(x, c, k, mu, P, lc) - l;
}
</%def>
% for v in variants:
${kernels(v)}
% endfor
