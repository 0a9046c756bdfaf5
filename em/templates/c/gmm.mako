## C++/OpenMP kernels of the kernel contract for one problem: ${cvtype}, M=${M}, D=${D}, ${dtype}.
## Rendered by em/specializer/render.py from the dict documented there; every variant in
## `variants` becomes its own set of extern "C" functions <kernel>_<variant name>.
<%
    T = "float" if dtype == "float32" else "double"
    VW = 16 if dtype == "float32" else 8          # lanes of a 64-byte vector
    DP = -(-D // VW) * VW                         # D padded to whole vectors
    MP = -(-M // VW) * VW                         # M padded to whole vectors
    S2W = DP if cvtype == "diag" else D * DP      # stored S2 entries per component
    PW = DP if cvtype == "diag" else DP * DP      # stored precision entries per component

    def lkey(v):
        """Name of the log-rho code of a variant (what its loops depend on)."""
        if v["layout"] == "kvec":
            return f"kvec{v['tile']}"
        if v["layout"] == "nvec":
            return f"nvec{v['block']}"
        return "gemm" if v["layout"] == "gemm" else f"tile{v['tile']}"

    def akey(v):
        """Name of the statistics code of a variant."""
        if cvtype == "diag":
            return f"k{v.get('ktile', 2)}"
        return "gemm" if v["layout"] == "gemm" else f"tile{v['tile']}"

    def panels():
        """(column offset, row bound) of each vector-wide panel of the full-covariance GEMMs:
        unrolled at render time for small D, one run-time loop ('pp', 'iend') for large D."""
        if DP // VW > 6:
            return [("pp", "iend")]
        return [(str(p * VW), str(min(D, (p + 1) * VW))) for p in range(DP // VW)]
%>\
// em generated kernel: cvtype=${cvtype} M=${M} D=${D} dtype=${dtype}
// variants: ${", ".join(v["name"] for v in variants)}
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#if defined(__SSE__)
#include <xmmintrin.h>
// flush denormals to zero inside kernels: tiny responsibilities would otherwise take
// microcode assists that make a pass tens of times slower
#define EM_FTZ_BEGIN const unsigned em_csr = _mm_getcsr(); _mm_setcsr(em_csr | 0x8040);
#define EM_FTZ_END _mm_setcsr(em_csr);
#else
#define EM_FTZ_BEGIN
#define EM_FTZ_END
#endif

typedef ${T} T;
enum { M = ${M}, D = ${D}, DP = ${DP}, MP = ${MP}, S2W = ${S2W}, PW = ${PW}, VW = ${VW} };

// one 64-byte vector of T (GCC vector extension: AVX-512 registers, or pairs of AVX2 ones)
typedef T vT __attribute__((vector_size(64)));
static inline vT vload(const T* p) { vT v; memcpy(&v, p, sizeof v); return v; }
<% IT = "int32_t" if T == "float" else "int64_t" %>\
typedef ${IT} vM __attribute__((vector_size(64)));   // shuffle masks
#ifdef __clang__
#define EM_SHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define EM_SHUFFLE(v, ...) __builtin_shuffle(v, (vM){__VA_ARGS__})
#endif
// horizontal sum / max as a tree of shuffles (a scalar loop over lanes is a long dependency chain)
static inline T vsum(vT v) {
% for h in [VW >> i for i in range(1, VW.bit_length()) ]:
    v += EM_SHUFFLE(v, ${", ".join(str((l + h) % VW) for l in range(VW))});
% endfor
    return v[0];
}
static inline T vmax(vT v) {
% for h in [VW >> i for i in range(1, VW.bit_length()) ]:
    { const vT u = EM_SHUFFLE(v, ${", ".join(str((l + h) % VW) for l in range(VW))}); v = u > v ? u : v; }
% endfor
    return v[0];
}

% if T == "float":
// exp of a vector of arguments <= 0: Cephes-style polynomial, relative error ~1e-7
typedef int32_t vI __attribute__((vector_size(64)));
static inline vT em_vexp(vT x) {
    const vT lo = (vT){} - 87.0f;
    x = x < lo ? lo : x;
    const vT n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    vT r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    vT p = 1.9875691500E-4f * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    const vI e = (__builtin_convertvector(n, vI) + 127) << 23;
    const vT y = p * (vT)e;
    return x <= lo ? (vT){} : y;          // below lo: 0, so results stay normal numbers
}
% else:
// exp of a vector of arguments <= 0: Cody-Waite reduction, degree-12 Taylor, rel. error ~2e-16
typedef int64_t vI __attribute__((vector_size(64)));
static inline vT em_vexp(vT x) {
    const vT lo = (vT){} - 700.0;
    x = x < lo ? lo : x;
    const vT n = (x * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;
    const vT r = (x - n * 0.693145751953125) - n * 1.42860682030941723212e-6;
    vT p = (vT){} + 1.0 / 479001600.0;
% for i in range(11, -1, -1):
    p = p * r + ${"%.17g" % (1.0 / __import__("math").factorial(i))};
% endfor
    const vI e = (__builtin_convertvector(n, vI) + 1023) << 52;
    const vT y = p * (vT)e;
    return x <= lo ? (vT){} : y;          // below lo: 0, so results stay normal numbers
}
% endif

% if T == "float":
// log of a vector of positive normal numbers: Cephes logf, relative error ~1e-7
static inline vT em_vlog(vT x) {
    vI bits; memcpy(&bits, &x, sizeof bits);
    vI e = (bits >> 23) - 126;
    bits = (bits & 0x007fffff) | 0x3f000000;             // mantissa in [0.5, 1)
    vT m; memcpy(&m, &bits, sizeof m);
    const vI small = m < 0.707106781186547524f;          // all-ones where true
    e += small;                                          // e - 1 there
    m = m + (vT)(small & (vI)bits) - 1.0f;               // m < sqrt(1/2): 2m - 1, else m - 1
    const vT z = m * m;
    vT y = 7.0376836292E-2f * m - 1.1514610310E-1f;
    y = y * m + 1.1676998740E-1f;
    y = y * m - 1.2420140846E-1f;
    y = y * m + 1.4249322787E-1f;
    y = y * m - 1.6668057665E-1f;
    y = y * m + 2.0000714765E-1f;
    y = y * m - 2.4999993993E-1f;
    y = y * m + 3.3333331174E-1f;
    y = y * m * z;
    const vT fe = __builtin_convertvector(e, vT);
    y += fe * -2.12194440e-4f;
    y -= 0.5f * z;
    return m + y + fe * 0.693359375f;
}
% else:
static inline vT em_vlog(vT x) {                       // double: libm, lane by lane
    for (int l = 0; l < VW; ++l) x[l] = log(x[l]);
    return x;
}
% endif

// largest entry of a row of MP log rho values, and the first component reaching it
static inline T row_max(const T* r) {
    vT m = vload(r);
    for (int c = VW; c < MP; c += VW) { const vT v = vload(r + c); m = v > m ? v : m; }
    return vmax(m);
}

static inline int row_argmax(const T* r, T mx) {
    for (int k = 0; k < M; ++k) if (r[k] == mx) return k;
    return 0;
}

// sum_k exp(r_k - mx) over a row; with store, r_k is replaced by exp(r_k - mx)
static inline T row_expsum(T* r, T mx, int store) {
    vT s = (vT){};
    for (int c = 0; c < MP; c += VW) {
        const vT e = em_vexp(vload(r + c) - mx);
        if (store) memcpy(r + c, &e, sizeof e);
        s += e;
    }
    return vsum(s);
}

// Rows b0 .. b0+VW (at most; returns how many) of lr: each row's max mx[i] and sum s[i] of
// exp(r - mx) (with store, the row is replaced by those exps), and log s of all of them in one
// vector log lg (padding lanes: s = 1).
static inline int row_block_logsum(T* lr, int b0, int nb, int store, vT* mx, vT* s, vT* lg) {
    const int nc = nb - b0 < VW ? nb - b0 : VW;
    *mx = (vT){};
    *s = (vT){} + (T)1;
    for (int i = 0; i < nc; ++i) {
        T* r = lr + (size_t)(b0 + i) * MP;
        (*mx)[i] = row_max(r);
        (*s)[i] = row_expsum(r, (*mx)[i], store);
    }
    *lg = em_vlog(*s);
    return nc;
}

static T* em_alloc(size_t count) {
    size_t bytes = (count * sizeof(T) + 63) & ~(size_t)63;
    T* p = (T*)aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

static double* em_alloc_d(size_t count) {
    size_t bytes = (count * sizeof(double) + 63) & ~(size_t)63;
    double* p = (double*)aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}

// Parameters converted to T and zero-padded to DP / MP.  Data and means are both taken relative
// to the data centre c (means in double, so nothing cancels however far the data sits from 0);
// c is representable in T (the backend rounds it), so the centred data are x - c exactly.
struct Form {
    T* c;     // [DP] data centre
    T* mu;    // full: [M][DP] centred means; diag: [M][DP] centred means times sqrt(precision)
    T* P;     // diag: [M][DP] sqrt(precisions); full: [M][DP][DP] upper Cholesky factor of the precision
    T* muT;   // diag: [DP][MP] transposed mu (component-vectorised layout)
    T* PT;    // diag: [DP][MP] transposed P
    T* lc;    // [MP] log constants, -inf for padding components
};

static void form_free(Form* f) {
    free(f->c); free(f->mu); free(f->P); free(f->muT); free(f->PT); free(f->lc);
}

static int form_init(Form* f, const double* c, const double* mu, const double* prec,
                     const double* lc) {
    f->c = em_alloc(DP); f->mu = em_alloc((size_t)M * DP); f->P = em_alloc((size_t)M * PW);
    f->muT = em_alloc((size_t)DP * MP); f->PT = em_alloc((size_t)DP * MP); f->lc = em_alloc(MP);
    if (!f->c || !f->mu || !f->P || !f->muT || !f->PT || !f->lc) { form_free(f); return -1; }
    for (int d = 0; d < D; ++d) f->c[d] = (T)c[d];
    for (int k = 0; k < MP; ++k) f->lc[k] = k < M ? (T)lc[k] : (T)-INFINITY;
    for (int k = 0; k < M; ++k) {
% if cvtype == "full":
        for (int d = 0; d < D; ++d) f->mu[(size_t)k * DP + d] = (T)(mu[(size_t)k * D + d] - c[d]);
% endif
% if cvtype == "diag":
        for (int d = 0; d < D; ++d) {         // (x - mu) sqrt(p) = x sqrt(p) - mu sqrt(p): one FMA
            const double sp = sqrt(prec[(size_t)k * D + d]);
            f->P[(size_t)k * DP + d] = f->PT[(size_t)d * MP + k] = (T)sp;
            f->mu[(size_t)k * DP + d] = f->muT[(size_t)d * MP + k] =
                (T)((mu[(size_t)k * D + d] - c[d]) * sp);
        }
% else:
        for (int i = 0; i < D; ++i)
            for (int j = i; j < D; ++j)
                f->P[((size_t)k * DP + i) * DP + j] = (T)prec[((size_t)k * D + i) * D + j];
% endif
    }
    return 0;
}

// Copy rows [n0, n0+nb) of X into the tile xb [B][DP], centred and zero-padded.
static inline void load_tile(const Form* f, const T* X, int64_t n0, int nb, T* xb) {
    for (int b = 0; b < nb; ++b) {
        const T* x = X + (n0 + b) * (int64_t)D;
        T* y = xb + (size_t)b * DP;
        for (int d = 0; d < D; ++d) y[d] = x[d] - f->c[d];
    }
}

// Normalise log rho rows in place into responsibilities (times the sample weight); returns the
// (weighted) log-likelihood of the rows.  hard: one-hot at the argmax, classification likelihood.
static inline double responsibilities(T* lr, int nb, const double* w, int hard) {
    double ll = 0.0;
    if (hard) {
        for (int b = 0; b < nb; ++b) {
            T* r = lr + (size_t)b * MP;
            const T mx = row_max(r);
            const T wb = w ? (T)w[b] : (T)1;
            const int arg = row_argmax(r, mx);
            ll += (double)wb * (double)mx;
            memset(r, 0, sizeof(T) * MP);
            r[arg] = wb;
        }
        return ll;
    }
    for (int b0 = 0; b0 < nb; b0 += VW) {
        vT mx, s, lg;
        const int nc = row_block_logsum(lr, b0, nb, 1, &mx, &s, &lg);
        for (int i = 0; i < nc; ++i) {
            T* r = lr + (size_t)(b0 + i) * MP;
            const T wb = w ? (T)w[b0 + i] : (T)1;
            ll += (double)wb * ((double)mx[i] + (double)lg[i]);
            const T scale = wb / s[i];
            for (int c = 0; c < MP; c += VW) {
                const vT v = vload(r + c) * scale;
                memcpy(r + c, &v, sizeof v);
            }
        }
    }
    return ll;
}

<%def name="logrho(v)">\
// log rho for the rows of a tile: xb [nb][DP] centred -> lr [nb][MP]; layout ${v["layout"]}.
static inline void logrho_${lkey(v)}(const Form* f, const T* xb, int nb, T* lr, T* scratch) {
% if cvtype == "diag" and v["layout"] == "kvec":
<%
    TB = v["tile"]
    NPV = MP // VW                     # vectors of components
    SPLIT = D > 64                     # sum 32 features at a time into totals (accuracy)
    KP = min(2 if SPLIT else 4, NPV)   # vectors per register panel
%>\
    // ${TB} samples at a time, vectorised over components (params transposed to [D][MP]),
    // panels of ${KP} vectors of components held in registers${"; partial sums of 32 features" if SPLIT else ""}
    (void)scratch;
    for (int b0 = 0; b0 < nb; b0 += ${TB}) {
        const int nt = nb - b0 < ${TB} ? nb - b0 : ${TB};
% for t in range(TB):
        const T* x${t} = xb + (size_t)(b0 + (${t} < nt ? ${t} : 0)) * DP;
% endfor
<%def name="kpanel(w, k0)">\
        {
            vT ${", ".join(f"a{t}_{c}" for t in range(TB) for c in range(w))};
% for t in range(TB):
% for c in range(w):
            a${t}_${c} = (vT){};
% endfor
% endfor
% if SPLIT:
            vT ${", ".join(f"z{t}_{c}" for t in range(TB) for c in range(w))};
% for t in range(TB):
% for c in range(w):
            z${t}_${c} = (vT){};
% endfor
% endfor
            for (int d0 = 0; d0 < D; d0 += 32) {
            const int d1 = D < d0 + 32 ? D : d0 + 32;
            for (int d = d0; d < d1; ++d) {
% else:
            for (int d = 0; d < D; ++d) {
% endif
                const T* m = f->muT + (size_t)d * MP + ${k0};
                const T* p = f->PT + (size_t)d * MP + ${k0};
% for c in range(w):
                const vT m${c} = vload(m + ${c * VW}), p${c} = vload(p + ${c * VW});
% endfor
% for t in range(TB):
                { const T xd = x${t}[d];
% for c in range(w):
                  const vT u${c} = xd * p${c} - m${c}; a${t}_${c} += u${c} * u${c};
% endfor
                }
% endfor
            }
% if SPLIT:
% for t in range(TB):
% for c in range(w):
            z${t}_${c} += a${t}_${c}; a${t}_${c} = (vT){};
% endfor
% endfor
            }
% for t in range(TB):
% for c in range(w):
            a${t}_${c} = z${t}_${c};
% endfor
% endfor
% endif
% for t in range(TB):
            if (${t} < nt) {
                T* out = lr + (size_t)(b0 + ${t}) * MP + ${k0};
% for c in range(w):
                const vT l${c} = vload(f->lc + ${k0} + ${c * VW}) - (T)0.5 * a${t}_${c};
                memcpy(out + ${c * VW}, &l${c}, sizeof(vT));
% endfor
            }
% endfor
        }
</%def>\
% if NPV // KP > 1:
        for (int k0 = 0; k0 < ${(NPV // KP) * KP * VW}; k0 += ${KP * VW})
${kpanel(KP, "k0")}\
% else:
${kpanel(KP, 0)}\
% endif
% if NPV % KP:
${kpanel(NPV % KP, (NPV // KP) * KP * VW)}\
% endif
    }
% elif cvtype == "diag":
    // one component at a time, vectorised over the samples of the tile (tile transposed)
    T* xt = scratch;                     // [D][TB]
    for (int b = 0; b < nb; ++b)
        for (int d = 0; d < D; ++d) xt[(size_t)d * ${v["block"]} + b] = xb[(size_t)b * DP + d];
    for (int k = 0; k < M; ++k) {
        T acc[${v["block"]}];
#pragma omp simd
        for (int b = 0; b < nb; ++b) acc[b] = 0;
        const T* m = f->mu + (size_t)k * DP;
        const T* p = f->P + (size_t)k * DP;
        for (int d0 = 0; d0 < D; d0 += 32) {   // partial sums of 32 features (accuracy)
            T part[${v["block"]}];
#pragma omp simd
            for (int b = 0; b < nb; ++b) part[b] = 0;
            for (int d = d0; d < (D < d0 + 32 ? D : d0 + 32); ++d) {
                const T md = m[d], pd = p[d];
                const T* xd = xt + (size_t)d * ${v["block"]};
#pragma omp simd
                for (int b = 0; b < nb; ++b) { T t = xd[b] * pd - md; part[b] += t * t; }
            }
#pragma omp simd
            for (int b = 0; b < nb; ++b) acc[b] += part[b];
        }
        for (int b = 0; b < nb; ++b) lr[(size_t)b * MP + k] = f->lc[k] - (T)0.5 * acc[b];
    }
    for (int b = 0; b < nb; ++b)
        for (int k = M; k < MP; ++k) lr[(size_t)b * MP + k] = (T)-INFINITY;
% elif v["layout"] == "gemm":
<%  TB = 8 %>\
    // y = (x - mu_k) U_k, ||y||^2 as a register-blocked GEMM: ${TB} samples x one vector of
    // columns of U per panel, rows of U only down to the panel's last column (U upper).
    T* diff = scratch;                   // [${TB}][DP]
    for (int b = 0; b < nb; ++b)
        for (int k = M; k < MP; ++k) lr[(size_t)b * MP + k] = (T)-INFINITY;
    for (int k = 0; k < M; ++k) {
        const T* m = f->mu + (size_t)k * DP;
        const T* U = f->P + (size_t)k * DP * DP;
        for (int b0 = 0; b0 < nb; b0 += ${TB}) {
            const int nt = nb - b0 < ${TB} ? nb - b0 : ${TB};
            for (int t = 0; t < ${TB}; ++t) {
                const T* x = xb + (size_t)(b0 + (t < nt ? t : 0)) * DP;
#pragma omp simd
                for (int j = 0; j < DP; ++j) diff[t * DP + j] = x[j] - m[j];
            }
            vT ${", ".join(f"q{t}" for t in range(TB))};
% for t in range(TB):
            q${t} = (vT){};
% endfor
% for j0, iend in panels():
            ${"for (int pp = 0; pp < DP; pp += VW)" if j0 == "pp" else ""} {
% if j0 == "pp":
                const int iend = D < pp + VW ? D : pp + VW;
% endif
                vT ${", ".join(f"a{t}" for t in range(TB))};
% for t in range(TB):
                a${t} = (vT){};
% endfor
                for (int i = 0; i < ${iend}; ++i) {
                    const vT u = vload(U + (size_t)i * DP + ${j0});
% for t in range(TB):
                    a${t} += diff[${t} * DP + i] * u;
% endfor
                }
% for t in range(TB):
                q${t} += a${t} * a${t};
% endfor
            }
% endfor
            const T qs[${TB}] = {${", ".join(f"vsum(q{t})" for t in range(TB))}};
            for (int t = 0; t < nt; ++t)
                lr[(size_t)(b0 + t) * MP + k] = f->lc[k] - (T)0.5 * qs[t];
        }
    }
% else:
    // y = (x - mu_k) U_k with U_k upper triangular, ||y||^2; ${v["tile"]} samples share each
    // load of a row of U (register tile).
    T* diff = scratch;                   // [TILE][DP]
    for (int b = 0; b < nb; ++b)
        for (int k = M; k < MP; ++k) lr[(size_t)b * MP + k] = (T)-INFINITY;
    for (int k = 0; k < M; ++k) {
        const T* m = f->mu + (size_t)k * DP;
        const T* U = f->P + (size_t)k * DP * DP;
        for (int b0 = 0; b0 < nb; b0 += ${v["tile"]}) {
            const int nt = nb - b0 < ${v["tile"]} ? nb - b0 : ${v["tile"]};
            T y[${v["tile"]}][DP];
            for (int t = 0; t < ${v["tile"]}; ++t) {
                const T* x = xb + (size_t)(b0 + (t < nt ? t : 0)) * DP;
#pragma omp simd
                for (int j = 0; j < DP; ++j) { diff[t * DP + j] = x[j] - m[j]; y[t][j] = 0; }
            }
            for (int i = 0; i < D; ++i) {
                const T* u = U + (size_t)i * DP;
                const int j0 = i & ~${VW - 1};
% for t in range(v["tile"]):
                const T d${t} = diff[${t} * DP + i];
% endfor
#pragma omp simd
                for (int j = j0; j < DP; ++j) {
                    const T uj = u[j];
% for t in range(v["tile"]):
                    y[${t}][j] += d${t} * uj;
% endfor
                }
            }
            for (int t = 0; t < nt; ++t) {
                T q = 0;
#pragma omp simd reduction(+:q)
                for (int j = 0; j < DP; ++j) q += y[t][j] * y[t][j];
                lr[(size_t)(b0 + t) * MP + k] = f->lc[k] - (T)0.5 * q;
            }
        }
    }
% endif
}
</%def>

<%def name="accumulate(v)">\
// Add the responsibilities R [nb][MP] of a centred tile to the statistics of components [k0, k1):
// sums over the tile in T, then added to the double accumulators aN [M], aS1 [M][DP], aS2 [M][S2W].
static inline void accumulate_${akey(v)}(int k0, int k1, const T* xb, int nb, const T* R,
                                   double* aN, double* aS1, double* aS2, T* scratch) {
% if cvtype == "diag":
    T* x2 = scratch;                     // [nb][DP] squares of the tile
    for (int b = 0; b < nb; ++b)
#pragma omp simd
        for (int d = 0; d < DP; ++d) x2[(size_t)b * DP + d] = xb[(size_t)b * DP + d] * xb[(size_t)b * DP + d];
<%
    KT = v.get("ktile", 2)                # components sharing each load of x and x^2
    PWD = 4 if KT <= 2 else 2             # vectors of features per register panel
    NPV = DP // VW
%>\
<%def name="dpanel(w, d0)">\
            {
                vT ${", ".join(f"s{q}_{c}_{c2}" for q in (1, 2) for c in range(KT) for c2 in range(w))};
% for q in (1, 2):
% for c in range(KT):
% for c2 in range(w):
                s${q}_${c}_${c2} = (vT){};
% endfor
% endfor
% endfor
                for (int b = 0; b < nb; ++b) {
                    const T* rb = R + (size_t)b * MP;
% for c in range(KT):
                    const T r${c} = rb[kk[${c}]];
% endfor
                    const T* x = xb + (size_t)b * DP + ${d0};
                    const T* xx = x2 + (size_t)b * DP + ${d0};
% for c2 in range(w):
                    { const vT xv = vload(x + ${c2 * VW}), qv = vload(xx + ${c2 * VW});
% for c in range(KT):
                      s1_${c}_${c2} += r${c} * xv; s2_${c}_${c2} += r${c} * qv;
% endfor
                    }
% endfor
                }
% for c in range(KT):
                if (${c} < nk) {
% for c2 in range(w):
                    for (int l = 0; l < VW; ++l) {
                        const int d = ${d0} + ${c2 * VW} + l;
                        if (d >= D) break;
                        aS1[(size_t)kk[${c}] * DP + d] += s1_${c}_${c2}[l];
                        aS2[(size_t)kk[${c}] * DP + d] += s2_${c}_${c2}[l];
                    }
% endfor
                }
% endfor
            }
</%def>\
    // N_k: sums of the rows of R
    for (int c = 0; c < MP; c += VW) {
        vT n = (vT){};
        for (int b = 0; b < nb; ++b) n += vload(R + (size_t)b * MP + c);
        for (int l = 0; l < VW; ++l)
            if (c + l >= k0 && c + l < k1) aN[c + l] += n[l];
    }
    // ${KT} components at a time share each load of x and x^2; panels of up to ${PWD} vectors of
    // features are held in registers
    for (int k = k0; k < k1; k += ${KT}) {
        const int nk = k1 - k < ${KT} ? k1 - k : ${KT};
        const int kk[${KT}] = {${", ".join(f"k + ({c} < nk ? {c} : 0)" for c in range(KT))}};
% if NPV // PWD > 1:
        for (int d0 = 0; d0 < ${(NPV // PWD) * PWD * VW}; d0 += ${PWD * VW})
${dpanel(PWD, "d0")}\
% elif NPV // PWD == 1:
${dpanel(PWD, "0")}\
% endif
% if NPV % PWD:
${dpanel(NPV % PWD, str((NPV // PWD) * PWD * VW))}\
% endif
    }
% else:
    T* rx = scratch;                     // [nb][DP] r_b * x_b for one component
    for (int k = k0; k < k1; ++k) {
        T nk = 0, s1[DP];
#pragma omp simd
        for (int j = 0; j < DP; ++j) s1[j] = 0;
        for (int b = 0; b < nb; ++b) {
            const T r = R[(size_t)b * MP + k];
            nk += r;
            const T* x = xb + (size_t)b * DP;
#pragma omp simd
            for (int j = 0; j < DP; ++j) { rx[(size_t)b * DP + j] = r * x[j]; s1[j] += r * x[j]; }
        }
        aN[k] += nk;
        for (int j = 0; j < D; ++j) aS1[(size_t)k * DP + j] += s1[j];
        if (nk == 0) continue;           // hard assignment leaves most components empty
        double* out = aS2 + (size_t)k * S2W;
% if v["layout"] == "gemm":
        // upper triangle of sum_b rx_b x_b^T, one vector of columns per panel, 8 rows in registers
% for j0, iend in panels():
        ${"for (int pp = 0; pp < DP; pp += VW)" if j0 == "pp" else ""} {
% if j0 == "pp":
        const int iend = D < pp + VW ? D : pp + VW;
% endif
        for (int i0 = 0; i0 < ${iend}; i0 += 8) {
            vT ${", ".join(f"a{t}" for t in range(8))};
% for t in range(8):
            a${t} = (vT){};
% endfor
            for (int b = 0; b < nb; ++b) {
                const vT u = vload(xb + (size_t)b * DP + ${j0});
                const T* w = rx + (size_t)b * DP + i0;
% for t in range(8):
                a${t} += w[${t}] * u;
% endfor
            }
            const vT acc[8] = {${", ".join(f"a{t}" for t in range(8))}};
            for (int t = 0; t < 8 && i0 + t < D; ++t) {   // whole vectors: only j >= i is read
                double* o = out + (size_t)(i0 + t) * DP + ${j0};
                for (int l = 0; l < VW; ++l) o[l] += acc[t][l];
            }
        }
        }
% endfor
% else:
        // upper triangle (from the vector holding the diagonal) of sum_b rx_b x_b^T,
        // ${v["tile"]} rows at a time sharing each load of x_b
        for (int i0 = 0; i0 < D; i0 += ${v["tile"]}) {
            const int j0 = i0 & ~${VW - 1};
            T acc[${v["tile"]}][DP];
            for (int t = 0; t < ${v["tile"]}; ++t)
#pragma omp simd
                for (int j = 0; j < DP; ++j) acc[t][j] = 0;
            for (int b = 0; b < nb; ++b) {
                const T* x = xb + (size_t)b * DP;
                const T* w = rx + (size_t)b * DP;
% for t in range(v["tile"]):
                const T s${t} = w[i0 + ${t} < DP ? i0 + ${t} : 0];
% endfor
#pragma omp simd
                for (int j = j0; j < DP; ++j) {
                    const T xj = x[j];
% for t in range(v["tile"]):
                    acc[${t}][j] += s${t} * xj;
% endfor
                }
            }
            for (int t = 0; t < ${v["tile"]} && i0 + t < D; ++t)
                for (int j = i0 + t; j < D; ++j) out[(size_t)(i0 + t) * DP + j] += acc[t][j];
        }
% endif
    }
% endif
}
</%def>

<%def name="scratch_size(v)">\
% if cvtype == "diag":
(size_t)${v["block"]} * DP\
% else:
(size_t)(${v["block"]} > 8 ? ${v["block"]} : 8) * DP\
% endif
</%def>

<%def name="fused(v)">\
extern "C" int fused_${v["name"]}(const T* X, int64_t N, const double* w, const double* c,
        const double* mu, const double* prec, const double* lc, int hard, int nthreads,
        double* out_ll, double* out_N, double* out_S1, double* out_S2) {
    const int B = ${v["block"]};
    Form f;
    if (form_init(&f, c, mu, prec, lc)) return -1;
    const int64_t nblocks = (N + B - 1) / B;
    double ll = 0.0;
    int err = 0;
    int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
    if (nblocks < nt) nt = nblocks > 0 ? (int)nblocks : 1;   // small problems: no idle threads
% if v["parallel"] == "samples":
    // each thread takes whole blocks and keeps private double accumulators
    memset(out_N, 0, sizeof(double) * M);
    memset(out_S1, 0, sizeof(double) * M * D);
    memset(out_S2, 0, sizeof(double) * M * (S2W / DP) * D);
#pragma omp parallel num_threads(nt) reduction(+:ll)
    {
        EM_FTZ_BEGIN
        T* xb = em_alloc((size_t)B * DP);
        T* lr = em_alloc((size_t)B * MP);
        T* scratch = em_alloc(${scratch_size(v)});
        double* aN = em_alloc_d(M);
        double* aS1 = em_alloc_d((size_t)M * DP);
        double* aS2 = em_alloc_d((size_t)M * S2W);
        const int ok = xb && lr && scratch && aN && aS1 && aS2;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            if (!ok) continue;
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
            load_tile(&f, X, n0, nb, xb);
            logrho_${lkey(v)}(&f, xb, nb, lr, scratch);
            ll += responsibilities(lr, nb, w ? w + n0 : 0, hard);
            accumulate_${akey(v)}(0, M, xb, nb, lr, aN, aS1, aS2, scratch);
        }
        if (ok) {
#pragma omp critical
            {
                for (int k = 0; k < M; ++k) {
                    out_N[k] += aN[k];
                    for (int d = 0; d < D; ++d) out_S1[(size_t)k * D + d] += aS1[(size_t)k * DP + d];
% if cvtype == "diag":
                    for (int d = 0; d < D; ++d) out_S2[(size_t)k * D + d] += aS2[(size_t)k * DP + d];
% else:
                    for (int i = 0; i < D; ++i)
                        for (int j = i; j < D; ++j)
                            out_S2[((size_t)k * D + i) * D + j] += aS2[(size_t)k * S2W + (size_t)i * DP + j];
% endif
                }
            }
        }
        EM_FTZ_END
        free(xb); free(lr); free(scratch); free(aN); free(aS1); free(aS2);
    }
% else:
    // all threads score a block together, then split its components among themselves:
    // one shared set of accumulators, however many threads (for large M x D x D)
    double* aN = em_alloc_d(M);
    double* aS1 = em_alloc_d((size_t)M * DP);
    double* aS2 = em_alloc_d((size_t)M * S2W);
    T* xb = em_alloc((size_t)B * DP);
    T* lr = em_alloc((size_t)B * MP);
    if (!aN || !aS1 || !aS2 || !xb || !lr) err = 1;
    if (!err) {
#pragma omp parallel num_threads(nt) reduction(+:ll)
    {
        EM_FTZ_BEGIN
        const int SUB = ${v["sub"]};
        T* scratch = em_alloc(${scratch_size(v)});
        const int ok = scratch != 0;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
#pragma omp for schedule(static)
            for (int s0 = 0; s0 < nb; s0 += SUB) {
                if (!ok) continue;
                const int ns = nb - s0 < SUB ? nb - s0 : SUB;
                load_tile(&f, X, n0 + s0, ns, xb + (size_t)s0 * DP);
                logrho_${lkey(v)}(&f, xb + (size_t)s0 * DP, ns, lr + (size_t)s0 * MP, scratch);
                ll += responsibilities(lr + (size_t)s0 * MP, ns, w ? w + n0 + s0 : 0, hard);
            }
#pragma omp for schedule(dynamic, 1)
            for (int k = 0; k < M; ++k) {
                if (!ok) continue;
                accumulate_${akey(v)}(k, k + 1, xb, nb, lr, aN, aS1, aS2, scratch);
            }
        }
        EM_FTZ_END
        free(scratch);
    }
    }
    if (!err) {
        for (int k = 0; k < M; ++k) {
            out_N[k] = aN[k];
            for (int d = 0; d < D; ++d) out_S1[(size_t)k * D + d] = aS1[(size_t)k * DP + d];
% if cvtype == "diag":
            for (int d = 0; d < D; ++d) out_S2[(size_t)k * D + d] = aS2[(size_t)k * DP + d];
% else:
            for (int i = 0; i < D; ++i)
                for (int j = i; j < D; ++j)
                    out_S2[((size_t)k * D + i) * D + j] = aS2[(size_t)k * S2W + (size_t)i * DP + j];
% endif
        }
    }
    free(aN); free(aS1); free(aS2); free(xb); free(lr);
% endif
% if cvtype == "full":
    for (int k = 0; k < M; ++k)            // mirror the upper triangle
        for (int i = 0; i < D; ++i)
            for (int j = 0; j < i; ++j)
                out_S2[((size_t)k * D + i) * D + j] = out_S2[((size_t)k * D + j) * D + i];
% endif
    *out_ll = ll;
    form_free(&f);
    return err ? -1 : 0;
}
</%def>

<%def name="scoring(v)">\
// mode 0: per-sample log-likelihood; 1: also normalised log posteriors [N][M]; 2: argmax only
extern "C" int score_${v["name"]}(const T* X, int64_t N, const double* c, const double* mu,
        const double* prec, const double* lc, int mode, int nthreads,
        double* out_ll, double* out_post, int64_t* out_arg) {
    const int B = ${v["block"]};
    Form f;
    if (form_init(&f, c, mu, prec, lc)) return -1;
    const int64_t nblocks = (N + B - 1) / B;
    int err = 0;
    int nt = nthreads > 0 ? nthreads : omp_get_max_threads();
    if (nblocks < nt) nt = nblocks > 0 ? (int)nblocks : 1;   // small problems: no idle threads
#pragma omp parallel num_threads(nt)
    {
        EM_FTZ_BEGIN
        T* xb = em_alloc((size_t)B * DP);
        T* lr = em_alloc((size_t)B * MP);
        T* scratch = em_alloc(${scratch_size(v)});
        const int ok = xb && lr && scratch;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            if (!ok) continue;
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
            load_tile(&f, X, n0, nb, xb);
            logrho_${lkey(v)}(&f, xb, nb, lr, scratch);
            if (mode == 2) {
                for (int b = 0; b < nb; ++b) {
                    const T* r = lr + (size_t)b * MP;
                    out_arg[n0 + b] = row_argmax(r, row_max(r));
                }
                continue;
            }
            for (int b0 = 0; b0 < nb; b0 += VW) {
                vT mx, s, lg;
                const int nc = row_block_logsum(lr, b0, nb, 0, &mx, &s, &lg);
                for (int i = 0; i < nc; ++i) {
                    const int64_t n = n0 + b0 + i;
                    const double l = (double)mx[i] + (double)lg[i];
                    out_ll[n] = l;
                    if (mode == 1) {
                        const T* r = lr + (size_t)(b0 + i) * MP;
                        for (int k = 0; k < M; ++k) out_post[n * M + k] = (double)r[k] - l;
                    }
                }
            }
        }
        EM_FTZ_END
        free(xb); free(lr); free(scratch);
    }
    form_free(&f);
    return err ? -1 : 0;
}
</%def>

<%
    # variants that share loop code share its functions (fewer lines for the compiler)
    firsts_l = {lkey(v): v for v in reversed(variants)}
    firsts_a = {akey(v): v for v in reversed(variants)}
%>\
// ---------------------------------------------------------------- shared loop code
% for v in firsts_l.values():
${logrho(v)}
% endfor
% for v in firsts_a.values():
${accumulate(v)}
% endfor
% for v in variants:
// ---------------------------------------------------------------- variant ${v["name"]}
${fused(v)}
${scoring(v)}
% endfor
