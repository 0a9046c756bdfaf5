## log rho -> responsibilities, log-likelihoods, log posteriors, argmax.  Two layouts of a
## block's log rho: rows lr [nb][MP] (components in lanes: horizontal max / sum per sample) and
## columns lr [M][B] (samples in lanes: every reduction over components is vertical).
<%page args="L"/>\
// ---- rows: lr [nb][MP]
static inline T row_max(const T* r, int64_t MP) {
    vT m = vload(r);
    for (int64_t c = VW; c < MP; c += VW) m = vmaxv(m, vload(r + c));
    return vmax(m);
}

// the largest entry of a row and the first component reaching it (per-lane running maxima
// and their indices, then the lanes' maximum and the least index reaching it, as trees)
<%def name="max_arg(name, S, V, VI, IS, lanes, load, hmax, hmin)">\
static inline ${S} ${name}(const ${S}* r, int64_t MP, int64_t* arg) {
    ${V} m = ${load}(r);
    ${VI} lane;
    for (int l = 0; l < ${lanes}; ++l) lane[l] = l;
    ${VI} idx = lane;
    for (int64_t c = ${lanes}; c < MP; c += ${lanes}) {
        const ${V} v = ${load}(r + c);
        const ${VI} gt = v > m;
        m = gt ? v : m;
        idx = gt ? lane + (${IS})c : idx;
    }
    const ${S} best = ${hmax}(m);
    *arg = ${hmin}(m == best ? idx : lane * 0 + (${IS})MP);
    return best;
}
</%def>\
${max_arg("row_max_arg", "T", "vT", "vI", "iT", "VW", "vload", "vmax", "vmin_int")}\
% if L.T == "double":
${max_arg("rowf_max_arg", "float", "vF", "vIF", "int32_t", "FW", "fload", "fmax_h", "fmin_int")}\
% endif

// sum_k exp(r_k - mx); with store, r_k becomes exp(r_k - mx)
static inline T row_expsum(T* r, int64_t MP, T mx, int store) {
    vT s = vzero();
    for (int64_t c = 0; c < MP; c += VW) {
        const vT e = em_vexp(vload(r + c) - mx);
        if (store) vstore(r + c, e);
        s += e;
    }
    return vsum(s);
}

// Rows b0 .. b0+VW (at most; returns how many): each row's max mx[i] and sum s[i] of exp(r - mx)
// (with store, the row becomes those exps), and log s of all of them in one vector log lg.
static inline int row_block_logsum(T* lr, int64_t MP, int b0, int nb, int store, vT* mx, vT* s,
                                   vT* lg) {
    const int nc = nb - b0 < VW ? nb - b0 : VW;
    *mx = vzero();
    *s = vzero() + (T)1;
    for (int i = 0; i < nc; ++i) {
        T* r = lr + (size_t)(b0 + i) * MP;
        (*mx)[i] = row_max(r, MP);
        (*s)[i] = row_expsum(r, MP, (*mx)[i], store);
    }
    *lg = em_vlog(*s);
    return nc;
}

// Rows of log rho -> responsibilities (times the sample weight) in place; returns the weighted
// log-likelihood of the rows.  hard: each row's argmax into arg [nb] (lr is left as it is;
// onehot_rows makes the rows where statistics need them), classification likelihood.
static inline double resp_rows(T* lr, int64_t MP, int nb, const double* w, int hard,
                               int64_t* arg) {
    double ll = 0.0;
    if (hard) {
        for (int b = 0; b < nb; ++b) {
            const T mx = row_max_arg(lr + (size_t)b * MP, MP, arg + b);
            ll += (w ? (double)(T)w[b] : 1.0) * (double)mx;
        }
        return ll;
    }
    for (int b0 = 0; b0 < nb; b0 += VW) {
        vT mx, s, lg;
        const int nc = row_block_logsum(lr, MP, b0, nb, 1, &mx, &s, &lg);
        for (int i = 0; i < nc; ++i) {
            T* r = lr + (size_t)(b0 + i) * MP;
            const T wb = w ? (T)w[b0 + i] : (T)1;
            ll += (double)wb * ((double)mx[i] + (double)lg[i]);
            const T scale = wb / s[i];
            for (int64_t c = 0; c < MP; c += VW) vstore(r + c, vload(r + c) * scale);
        }
    }
    return ll;
}

// Rows [nb][MP] one-hot at arg, with the sample's weight (or 1)
static inline void onehot_rows(T* lr, int64_t MP, int nb, const int64_t* arg, const double* w) {
    memset(lr, 0, sizeof(T) * MP * (size_t)nb);
    for (int b = 0; b < nb; ++b) lr[(size_t)b * MP + arg[b]] = w ? (T)w[b] : (T)1;
}

// Scores of rows of log rho for samples n0..n0+nb: mode 0 log-likelihood, 1 also normalised
// log posteriors [N][M], 2 argmax only.
static inline void score_rows(T* lr, int64_t M, int64_t MP, int nb, int64_t n0, int mode,
                              double* out_ll, double* out_post, int64_t* out_arg) {
    if (mode == 2) {
        for (int b = 0; b < nb; ++b) {
            const T* r = lr + (size_t)b * MP;
            row_max_arg(r, MP, out_arg + n0 + b);
        }
        return;
    }
    for (int b0 = 0; b0 < nb; b0 += VW) {
        vT mx, s, lg;
        const int nc = row_block_logsum(lr, MP, b0, nb, 0, &mx, &s, &lg);
        for (int i = 0; i < nc; ++i) {
            const int64_t n = n0 + b0 + i;
            const double l = (double)mx[i] + (double)lg[i];
            out_ll[n] = l;
            if (mode == 1) {
                const T* r = lr + (size_t)(b0 + i) * MP;
                for (int64_t k = 0; k < M; ++k) out_post[n * M + k] = (double)r[k] - l;
            }
        }
    }
}

// ---- columns: lr [M][B], a vector of VW samples at a time
// weights of the samples b0 .. b0+VW: w (or 1) for samples below nb, 0 for padding lanes
static inline vT lane_weights(const double* w, int b0, int nb) {
    vT v = vzero();
    for (int l = 0; l < VW && b0 + l < nb; ++l) v[l] = w ? (T)w[b0 + l] : (T)1;
    return v;
}

// max over components of each lane, and (first) index reaching it as T
static inline vT col_max(const T* r, int64_t M, int B, vT* arg) {
    vT mx = vload(r), best = vzero();
    for (int64_t k = 1; k < M; ++k) {
        const vT v = vload(r + (size_t)k * B);
        const vI gt = v > mx;
        mx = gt ? v : mx;
        best = gt ? vzero() + (T)k : best;
    }
    *arg = best;
    return mx;
}

// sum over components of exp(r - mx); with store, r becomes those exps
static inline vT col_expsum(T* r, int64_t M, int B, vT mx, int store) {
    vT s = vzero();
    for (int64_t k = 0; k < M; ++k) {
        const vT e = em_vexp(vload(r + (size_t)k * B) - mx);
        if (store) vstore(r + (size_t)k * B, e);
        s += e;
    }
    return s;
}

// Columns of log rho -> responsibilities in place (padding lanes get 0); returns the weighted
// log-likelihood.  hard: each sample's argmax into arg [nb] (lr left as it is; onehot_cols).
static inline double resp_cols(T* lr, int64_t M, int B, int nb, const double* w, int hard,
                               int64_t* arg) {
    double ll = 0.0;
    for (int b0 = 0; b0 < nb; b0 += VW) {
        const vT wv = lane_weights(w, b0, nb);
        const int nc = nb - b0 < VW ? nb - b0 : VW;
        T* r = lr + b0;
        vT argv;
        const vT mx = col_max(r, M, B, &argv);
        if (hard) {
            for (int l = 0; l < nc; ++l) {
                ll += (double)wv[l] * (double)mx[l];
                arg[b0 + l] = (int64_t)argv[l];
            }
            continue;
        }
        const vT s = col_expsum(r, M, B, mx, 1);
        const vT lg = em_vlog(s);
        const vT scale = wv / s;
        for (int64_t k = 0; k < M; ++k) vstore(r + (size_t)k * B, vload(r + (size_t)k * B) * scale);
        for (int l = 0; l < nc; ++l) ll += (double)wv[l] * ((double)mx[l] + (double)lg[l]);
    }
    return ll;
}

// Columns [M][B] one-hot at arg, with the sample's weight (or 1); 0 in the padding lanes
static inline void onehot_cols(T* lr, int64_t M, int B, int nb, const int64_t* arg,
                               const double* w) {
    const int nbp = (nb + VW - 1) / VW * VW;
    for (int64_t k = 0; k < M; ++k) memset(lr + (size_t)k * B, 0, sizeof(T) * nbp);
    for (int b = 0; b < nb; ++b) lr[(size_t)arg[b] * B + b] = w ? (T)w[b] : (T)1;
}

static inline void score_cols(T* lr, int64_t M, int B, int nb, int64_t n0, int mode,
                              double* out_ll, double* out_post, int64_t* out_arg) {
    for (int b0 = 0; b0 < nb; b0 += VW) {
        const int nc = nb - b0 < VW ? nb - b0 : VW;
        T* r = lr + b0;
        vT arg;
        const vT mx = col_max(r, M, B, &arg);
        if (mode == 2) {
            for (int l = 0; l < nc; ++l) out_arg[n0 + b0 + l] = (int64_t)arg[l];
            continue;
        }
        const vT lg = em_vlog(col_expsum(r, M, B, mx, 0));
        for (int l = 0; l < nc; ++l) {
            const int64_t n = n0 + b0 + l;
            const double ln = (double)mx[l] + (double)lg[l];
            out_ll[n] = ln;
            if (mode == 1)
                for (int64_t k = 0; k < M; ++k) out_post[n * M + k] = (double)r[(size_t)k * B + l] - ln;
        }
    }
}
