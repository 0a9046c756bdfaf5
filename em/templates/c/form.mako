## Parameters in the form the kernels read, and tiles of data.  L: Layout.
<%page args="L"/>\
// Parameters converted to T and zero-padded.  Means are taken relative to the data centre c in
// double (nothing cancels however far the data sits from 0); c is representable in T (the
// backend rounds it), so centred data are x - c exactly.  A component's statistics are taken
// about c + mc_k where exact[k], else about c (the backend decides, see
// em.backends.c_backend.shifts); mc_k = T(sh_k - c), sh the component's mean unless given.
struct Form {
    int64_t M, MP;   // components; padded to whole vectors (row layout of log rho)
    T* c;            // [DP] data centre
    T* mc;           // [M][DP] centred shifts of the exact statistics: T(sh - c)
    T* mu;           // [M][DP] full: centred means (mc unless sh is given); diag: centred
                     // means times sqrt(precision)
    T* P;            // diag: [M][DP] sqrt(precisions); full: [M][DP][DP] upper Cholesky factor
    T* muT;          // diag: [DP][MP] mu transposed (components in lanes)
    T* PT;           // diag: [DP][MP] P transposed
    T* lc;           // [MP] log constants, -inf for padding components
    T* dT;           // diag: [DP][MP] mu_k p (the kdot layout's expanded form, see logrho_kdot)
    T* dc;           // diag: [MP] lc_k - |mu_k sqrt(p)|^2 / 2, -inf for padding components
    int shared;      // diag: every component has the same precision (k-means' form)
    int dot;         // kdot: this call's log rho takes the expanded form (see logrho_kdot)
    const uint8_t* exact;   // [M] statistics about c + mc_k (else about c); NULL when scoring
    int64_t nfar;    // diag: components whose log rho comes from x - mu in double (the fast
    int64_t* far;    // [nfar] form rounds them beyond their spread; em.backends.c_backend.far),
    double* fmu;     // [nfar][D] their means
    double* fp;      // [nfar][D] their precisions
% if L.cvtype == "diag" and L.T == "double":
    int64_t MPF;     // M padded to whole float vectors
    float* dTf;      // [DP][MPF] dT in float, and
    float* dcf;      // [MPF] dc: kdot scores float64 data in float first (see kdot_pick)
    double ebase, eslope;   // a float score is within ebase + eslope |x - c| of the double's
% endif
};

static void form_free(Form* f) {
    free(f->c); free(f->mc); free(f->P); free(f->muT); free(f->PT); free(f->lc);
    free(f->dT); free(f->dc);
    free(f->far); free(f->fmu); free(f->fp);
% if L.cvtype == "diag" and L.T == "double":
    free(f->dTf); free(f->dcf);
% endif
    if (f->mu != f->mc) free(f->mu);
}

static int form_init(Form* f, int64_t M, const double* c, const double* mu, const double* prec,
                     const double* lc, const uint8_t* far, const uint8_t* exact,
                     const double* sh) {
    f->M = M;
    f->exact = exact;
    f->dT = f->dc = 0;
    f->shared = f->dot = 0;
    f->nfar = 0;
    f->far = 0; f->fmu = f->fp = 0;
% if L.cvtype == "diag" and L.T == "double":
    f->dTf = f->dcf = 0;
    f->MPF = (M + FW - 1) / FW * FW;
% endif
% if L.cvtype == "diag":
    for (int64_t k = 0; far && k < M; ++k) f->nfar += far[k] != 0;
    if (f->nfar) {
        f->far = (int64_t*)malloc(sizeof(int64_t) * (size_t)f->nfar);
        f->fmu = em_alloc_d((size_t)f->nfar * D); f->fp = em_alloc_d((size_t)f->nfar * D);
        if (!f->far || !f->fmu || !f->fp) {
            free(f->far); free(f->fmu); free(f->fp);
            return -1;
        }
        for (int64_t k = 0, i = 0; k < M; ++k) {
            if (!far[k]) continue;
            f->far[i] = k;
            memcpy(f->fmu + (size_t)i * D, mu + (size_t)k * D, sizeof(double) * D);
            memcpy(f->fp + (size_t)i * D, prec + (size_t)k * D, sizeof(double) * D);
            ++i;
        }
    }
% else:
    (void)far;
% endif
    f->MP = (M + VW - 1) / VW * VW;
    const int64_t MP = f->MP;
% if L.cvtype == "diag":
    f->P = em_alloc((size_t)M * DP);
    f->muT = em_alloc((size_t)DP * MP); f->PT = em_alloc((size_t)DP * MP);
    f->dT = em_alloc((size_t)DP * MP); f->dc = em_alloc(MP);
% else:
    f->P = em_alloc((size_t)M * DP * DP);
    f->muT = f->PT = 0;
% endif
    f->c = em_alloc(DP); f->mc = em_alloc((size_t)M * DP); f->lc = em_alloc(MP);
    f->mu = ${"em_alloc((size_t)M * DP)" if L.cvtype == "diag" else "sh ? em_alloc((size_t)M * DP) : f->mc"};
    if (!f->c || !f->mc || !f->mu || !f->P || !f->lc${" || !f->muT || !f->PT || !f->dT || !f->dc" if L.cvtype == "diag" else ""}) {
        form_free(f);
        return -1;
    }
    for (int d = 0; d < D; ++d) f->c[d] = (T)c[d];
    for (int64_t k = 0; k < MP; ++k) f->lc[k] = k < M ? (T)lc[k] : (T)-INFINITY;
    for (int64_t k = 0; k < M; ++k) {
        const double* s = sh ? sh : mu;
        for (int d = 0; d < D; ++d) f->mc[(size_t)k * DP + d] = (T)(s[(size_t)k * D + d] - c[d]);
% if L.cvtype == "diag":
        for (int d = 0; d < D; ++d) {         // (x - mu) sqrt(p) = x sqrt(p) - mu sqrt(p): one FMA
            const double sp = sqrt(prec[(size_t)k * D + d]);
            f->P[(size_t)k * DP + d] = f->PT[(size_t)d * MP + k] = (T)sp;
            f->mu[(size_t)k * DP + d] = f->muT[(size_t)d * MP + k] =
                (T)((mu[(size_t)k * D + d] - c[d]) * sp);
        }
% else:
        if (f->mu != f->mc)
            for (int d = 0; d < D; ++d) f->mu[(size_t)k * DP + d] = (T)(mu[(size_t)k * D + d] - c[d]);
        for (int i = 0; i < D; ++i)
            for (int j = i; j < D; ++j)
                f->P[((size_t)k * DP + i) * DP + j] = (T)prec[((size_t)k * D + i) * D + j];
% endif
    }
% if L.cvtype == "diag":
    f->shared = 1;
    for (int64_t k = 0; k < M; ++k)
        for (int d = 0; d < D; ++d) f->shared = f->shared && f->P[(size_t)k * DP + d] == f->P[d];
    for (int64_t k = 0; f->shared && k < MP; ++k) {   // kdot's form: for a shared precision only
        double q = 0.0;
        for (int d = 0; k < M && d < D; ++d) {
            const double m = (double)f->mu[(size_t)k * DP + d];
            q += m * m;
            f->dT[(size_t)d * MP + k] = (T)(m * (double)f->P[d]);
        }
        f->dc[k] = k < M ? (T)((double)f->lc[k] - 0.5 * q) : (T)-INFINITY;
    }
% if L.T == "double":
    if (f->shared) {
        // float scores s_k = dc_k + x.dT_k (rounded inputs, D FMAs, one add) are within
        // (D + 4) u (|dc_k| + |x| |dT_k|) of the double's (u = 2^-24, Cauchy-Schwarz), plus
        // what flushing subnormals loses; a pick needs twice that between the best two
        f->dTf = (float*)em_zalloc(sizeof(float) * DP * (size_t)f->MPF);
        f->dcf = (float*)em_zalloc(sizeof(float) * (size_t)f->MPF);
        if (!f->dTf || !f->dcf) {
            form_free(f);
            return -1;
        }
        double dcmax = 0.0, dTmax = 0.0;
        for (int64_t k = 0; k < f->MPF; ++k) {
            double q = 0.0;
            for (int d = 0; k < M && d < D; ++d) {
                const double t = f->dT[(size_t)d * MP + k];
                f->dTf[(size_t)d * f->MPF + k] = (float)t;
                q += t * t;
            }
            f->dcf[k] = k < M ? (float)f->dc[k] : -INFINITY;
            if (k < M && fabs(f->dc[k]) > dcmax) dcmax = fabs(f->dc[k]);
            if (q > dTmax) dTmax = q;
        }
        const double g = 2.0 * 1.0625 * (D + 4) * 0x1p-24;
        f->eslope = g * sqrt(dTmax);
        f->ebase = g * dcmax + 2.0 * (D + 2) * 0x1p-126 * (1.0 + sqrt(dTmax));
    }
% endif
% endif
    return 0;
}

// Rows [n0, n0+nb) of X, centred, into the tile z [nb][ZW]:${" [x | x*x] (both moments of one GEMM; x*x from column D)" if L.cvtype == "diag" else " x"},
// whole vectors at a time, nothing past a row read; the tiles come zeroed (em_alloc) and
// columns past the data are never written.  A row's last part vector is the vector that ends
// with the row (it overlaps the one before with the same values); rows shorter than a vector
// go lane by lane.
static inline void load_tile(const Form* f, const T* X, int64_t n0, int nb, T* z) {
<% full, tail = divmod(L.D, L.lanes); diag = L.cvtype == "diag" %>\
    const T* c = f->c;
    for (int b = 0; b < nb; ++b) {
        const T* x = X + (n0 + b) * (int64_t)D;
        T* y = z + (size_t)b * ZW;
        // squares from registers: reloading the tile just stored stalls on store forwarding
#pragma GCC unroll 8
        for (int v = 0; v < ${full * L.lanes}; v += VW) {
            const vT t = vload(x + v) - vload(c + v);
            vstore(y + v, t);
% if diag:
            vstore(y + D + v, t * t);
% endif
        }
% if tail and full:
        {
            const vT t = vload(x + D - VW) - vload(c + D - VW);
            vstore(y + D - VW, t);
% if diag:
            vstore(y + 2 * D - VW, t * t);
% endif
        }
% elif tail:
        for (int l = 0; l < D; ++l) y[l] = x[l] - c[l];
% if diag:
        for (int l = 0; l < D; ++l) y[D + l] = y[l] * y[l];
% endif
% endif
    }
}

// The x part of a tile transposed: xt [D][B] (samples in lanes), zero beyond nb up to a vector.
static inline void transpose_tile(const T* z, int nb, int B, T* xt) {
    const int nbp = (nb + VW - 1) / VW * VW;
    for (int d = 0; d < D; ++d) {
        T* o = xt + (size_t)d * B;
        for (int b = 0; b < nb; ++b) o[b] = z[(size_t)b * ZW + d];
        for (int b = nb; b < nbp; ++b) o[b] = 0;
    }
}
