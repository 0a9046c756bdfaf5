## The extern "C" entry points of each variant at this width: fused_<name> (one EM pass: log
## rho, responsibilities, statistics) and score_<name> (log-likelihood, log posteriors or argmax).
## Their parameter lists come from `sig` (em.backends.c_backend declares them once).
## A variant picks a log-rho layout (kvec / kdot / nvec / gemm / gcol), a block of samples and a parallel
## strategy: 'samples' (threads take whole blocks, private accumulators reduced in thread order)
## or 'components' (threads score a block together, then split its components).
<%page args="L, variants"/>\
<%
    layouts = {v.layout for v in variants}
    COLS = ("nvec", "gcol")                  # layouts with samples in lanes: lr [M][B]
%>\
// Per-thread workspace: the tile, its log rho / responsibilities, scratch, accumulators.
struct Work {
    T* z;           // [B][ZW] centred tile
    T* lr;          // rows [B][MP] or columns [M][B]
    T* xt;          // [DP + 8][B] the tile transposed (samples in lanes); rows past D zero
    T* aux;         // aux_size(B) scratch: x - mu, or r (x - mu)
    T* u;           // aux_size(B) scratch: x - mu
    T* n;           // [MP] N_k of a block
    int64_t* arg;   // [B] hard assignment: the component of each sample
% if "kdot" in layouts and L.T == "double":
    float* zf;      // [B][DP] the tile in float, and
    float* lrf;     // [B][MPF] its scores: kdot scores float64 data in float first
% endif
    double* aN;     // [M]
% if L.cvtype == "diag":
    double* aS1;    // [M][ZW]: [S1 | S2] of each component
    double* aS2;    // unused
% else:
    double* aS1;    // [M][DP]
    double* aS2;    // [M][D][DP] upper triangle
% endif
};

static void work_free(Work* w) {
    free(w->z); free(w->lr); free(w->xt); free(w->aux); free(w->u); free(w->n);
    free(w->arg);
% if "kdot" in layouts and L.T == "double":
    free(w->zf); free(w->lrf);
% endif
    free(w->aN); free(w->aS1); free(w->aS2);
    memset(w, 0, sizeof *w);
}

// scratch of a block: [B + 16][DP] (row tiles read up to 16 rows past a block) or [DP + 8][B]
// (column tiles read up to 8 rows past the features)
static size_t aux_size(int B) {
    const size_t rows = (size_t)(B + 16) * DP, cols = (size_t)(DP + 8) * B;
    return rows > cols ? rows : cols;
}

static int work_alloc(Work* w, const Form* f, int B, int accumulators) {
    memset(w, 0, sizeof *w);
    w->z = em_alloc((size_t)B * ZW);
    w->lr = em_alloc((size_t)B * f->MP);
    w->xt = em_alloc((size_t)(DP + 8) * B);
    w->aux = em_alloc(aux_size(B));
    w->u = em_alloc(aux_size(B));
    w->n = em_alloc(f->MP);
    w->arg = (int64_t*)malloc(sizeof(int64_t) * (size_t)B);
    int ok = w->z && w->lr && w->xt && w->aux && w->u && w->n && w->arg;
% if "kdot" in layouts and L.T == "double":
    w->zf = (float*)em_zalloc(sizeof(float) * (size_t)B * DP);
    w->lrf = (float*)em_zalloc(sizeof(float) * (size_t)B * f->MPF);
    ok = ok && w->zf && w->lrf;
% endif
    if (accumulators) {
        w->aN = em_alloc_d(f->M);
% if L.cvtype == "diag":
        w->aS1 = em_alloc_d((size_t)f->M * ZW);
        ok = ok && w->aN && w->aS1;
% else:
        w->aS1 = em_alloc_d((size_t)f->M * DP);
        w->aS2 = em_alloc_d((size_t)f->M * D * DP);
        ok = ok && w->aN && w->aS1 && w->aS2;
% endif
    }
    if (!ok) work_free(w);
    return ok ? 0 : -1;
}

// out_N [M], out_S1 [M][D], out_S2 [M][D] or [M][D][D]: the sum of the accumulators of
// works[0..n) in that order (the same result whatever thread finished first)
static void reduce_out(const Work* works, int n, int64_t M, double* out_N, double* out_S1,
                       double* out_S2) {
    memset(out_N, 0, sizeof(double) * M);
    memset(out_S1, 0, sizeof(double) * M * D);
    memset(out_S2, 0, sizeof(double) * M * D * ${1 if L.cvtype == "diag" else "D"});
    for (int t = 0; t < n; ++t) {
        const Work* w = works + t;
        if (!w->aN) continue;                   // a thread the runtime did not start
        for (int64_t k = 0; k < M; ++k) {
            out_N[k] += w->aN[k];
% if L.cvtype == "diag":
            for (int d = 0; d < D; ++d) {
                out_S1[(size_t)k * D + d] += w->aS1[(size_t)k * ZW + d];
                out_S2[(size_t)k * D + d] += w->aS1[(size_t)k * ZW + D + d];
            }
% else:
            for (int d = 0; d < D; ++d) out_S1[(size_t)k * D + d] += w->aS1[(size_t)k * DP + d];
            for (int i = 0; i < D; ++i)
                for (int j = i; j < D; ++j)
                    out_S2[((size_t)k * D + i) * D + j] += w->aS2[((size_t)k * D + i) * DP + j];
% endif
        }
    }
% if L.cvtype == "full":
    for (int64_t k = 0; k < M; ++k)            // mirror the upper triangle
        for (int i = 0; i < D; ++i)
            for (int j = 0; j < i; ++j)
                out_S2[((size_t)k * D + i) * D + j] = out_S2[((size_t)k * D + j) * D + i];
% endif
}

// ---- one block of samples [n0, n0 + nb) in a workspace, per layout
% for lay in sorted(layouts):
<% rows = lay not in COLS %>\
static inline void block_logrho_${lay}(const Form* f, const T* X, int64_t n0, int nb, int B, Work* w) {
    load_tile(f, X, n0, nb, w->z);
% if lay == "kvec":
    (void)B;
    logrho_kvec(f, w->z, nb, w->lr);
    logrho_far(f, X, n0, nb, w->lr, f->MP, 1);
% elif lay == "kdot":
    (void)B;
    if (f->dot) {                       // picks each sample's component (far: none)
        kdot_pick(f, w->z, nb, w->lr, w->arg${", w->zf, w->lrf" if L.T == "double" else ""});
        return;
    }
    logrho_kvec(f, w->z, nb, w->lr);
    logrho_far(f, X, n0, nb, w->lr, f->MP, 1);
% elif lay == "nvec":
    transpose_tile(w->z, nb, B, w->xt);
    logrho_nvec(f, w->xt, B, nb, w->lr);
    logrho_far(f, X, n0, nb, w->lr, 1, B);
% elif lay == "gcol":
    transpose_tile(w->z, nb, B, w->xt);
    logrho_gcol(f, w->xt, B, nb, w->lr, w->aux);
% else:
    (void)B;
    logrho_gemm(f, w->z, nb, w->lr, w->aux);
% endif
}

static inline double block_resp_${lay}(const Form* f, int nb, int B, const double* wt, int hard, Work* w) {
% if lay == "kdot":
    (void)B;
    if (f->dot) return resp_rows_kdot(f, w->z, nb, wt, w->arg);
    return resp_rows(w->lr, f->MP, nb, wt, hard, w->arg);
% elif L.cvtype == "diag":
    return ${f"resp_rows(w->lr, f->MP, nb, wt, hard, w->arg)" if rows else "resp_cols(w->lr, f->M, B, nb, wt, hard, w->arg)"};
% else:
    // hard: the statistics GEMMs take the one-hot responsibilities
% if rows:
    (void)B;
    const double ll = resp_rows(w->lr, f->MP, nb, wt, hard, w->arg);
    if (hard) onehot_rows(w->lr, f->MP, nb, w->arg, wt);
% else:
    const double ll = resp_cols(w->lr, f->M, B, nb, wt, hard, w->arg);
    if (hard) onehot_cols(w->lr, f->M, B, nb, w->arg, wt);
% endif
    return ll;
% endif
}

static inline void block_score_${lay}(const Form* f, int nb, int B, int64_t n0, int mode, Work* w,
                                      double* out_ll, double* out_post, int64_t* out_arg) {
% if lay == "kdot":
    if (f->dot) {                       // argmax: kdot_pick's
        memcpy(out_arg + n0, w->arg, sizeof(int64_t) * (size_t)nb);
        return;
    }
% endif
% if rows:
    (void)B;
    score_rows(w->lr, f->M, f->MP, nb, n0, mode, out_ll, out_post, out_arg);
% else:
    score_cols(w->lr, f->M, B, nb, n0, mode, out_ll, out_post, out_arg);
% endif
}

// statistics of components [k0, k1) of the block held by `data`, into the accumulators of `acc`;
// s1, s2: scratch as large as Work.aux; hard: each sample in its component data->arg alone,
// with its weight wt (or 1)
static inline void block_stats_${lay}(const Form* f, int64_t k0, int64_t k1, int nb, int B,
                                      const Work* data, Work* acc, T* s1, T* s2, int hard,
                                      const double* wt) {
% if L.cvtype == "diag":
    (void)s1; (void)s2;
    if (hard) {
        stats_hard(f, k0, k1, data->z, nb, data->arg, wt, acc->aN, acc->aS1);
        return;
    }
% if rows:
    counts_rows(data->lr, f->MP, nb, acc->n);
% else:
    counts_cols(data->lr, f->M, B, nb, acc->n);
% endif
    stats_tile(f, k0, k1, data->z, nb, data->lr, ${"f->MP, 1" if rows else "1, B"}, acc->n, acc->aN, acc->aS1);
% elif lay == "gcol":
    (void)hard; (void)wt;
    stats_tri(f, k0, k1, data->xt, B, nb, data->lr, acc->aN, acc->aS1, acc->aS2, s1, s2);
% else:
    (void)hard; (void)wt;
    stats_tile(f, k0, k1, data->z, nb, data->lr, ${"f->MP, 1" if rows else "1, B"}, acc->aN, acc->aS1, acc->aS2, s1, s2);
% endif
}

% endfor
<%def name="prologue(by_blocks=True, exact='exact', sh='sh')">\
    Form f;
    if (form_init(&f, M, c, mu, prec, lc, far, ${exact}, ${sh})) return -1;
    const int64_t nblocks = (N + B - 1) / B;
    int nt = nthreads > 0 ? nthreads : 1;
% if by_blocks:
    if (nblocks < nt) nt = nblocks > 0 ? (int)nblocks : 1;   // no idle threads
% endif
    Work* works = (Work*)calloc(nt, sizeof(Work));
    double* ll = (double*)calloc(nt, sizeof(double));
    int err = !works || !ll;
</%def>\
<%def name="epilogue()">\
    if (works)
        for (int t = 0; t < nt; ++t) work_free(works + t);
    free(works); free(ll);
    form_free(&f);
    return err ? -1 : 0;
</%def>\
% for v in variants:
<% lay = v.layout %>\
// ------------------------------------------------------------------ variant ${v.name}
extern "C" int fused_${v.name}(${sig["fused"]}) {
    const int B = ${v.block};
${prologue(v.parallel == "samples")}\
% if lay == "kdot":
    f.dot = f.shared && !f.nfar && hard;   // the expanded form picks hard assignments only
% endif
% if v.parallel == "samples":
    if (!err) {
#pragma omp parallel num_threads(nt)
    {
        EM_FTZ_BEGIN
        const int t = omp_get_thread_num();
        Work* w = works + t;
        const int ok = work_alloc(w, &f, B, 1) == 0;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            if (!ok) continue;
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
            block_logrho_${lay}(&f, X, n0, nb, B, w);
            ll[t] += block_resp_${lay}(&f, nb, B, weight ? weight + n0 : 0, hard, w);
            block_stats_${lay}(&f, 0, M, nb, B, w, w, w->aux, w->u, hard, weight ? weight + n0 : 0);
        }
        EM_FTZ_END
    }
    }
    if (!err) reduce_out(works, nt, M, out_N, out_S1, out_S2);
% else:
<%
    group = L.stats_tile[0] if L.cvtype == "diag" else 1
    assert lay not in COLS, "the components strategy needs the rows layout"
%>\
    // all threads score a block together (sub-blocks of ${v.sub} rows), then split its
    // components (groups of ${group}): one shared set of accumulators, however many threads
    Work shared;
    memset(&shared, 0, sizeof shared);
    if (!err && work_alloc(&shared, &f, B, 1)) err = 1;
    if (!err) {
    const int64_t groups = (M + ${group - 1}) / ${group};
#pragma omp parallel num_threads(nt)
    {
        EM_FTZ_BEGIN
        const int t = omp_get_thread_num();
        const size_t scratch_size = aux_size(B);
        T* scratch = em_alloc(2 * scratch_size);
        const int ok = scratch != 0;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
#pragma omp for schedule(static)
            for (int s0 = 0; s0 < nb; s0 += ${v.sub}) {
                if (!ok) continue;
                const int ns = nb - s0 < ${v.sub} ? nb - s0 : ${v.sub};
                T* zs = shared.z + (size_t)s0 * ZW;
                T* lrs = shared.lr + (size_t)s0 * f.MP;
                load_tile(&f, X, n0 + s0, ns, zs);
% if lay == "kvec":
                logrho_kvec(&f, zs, ns, lrs);
                logrho_far(&f, X, n0 + s0, ns, lrs, f.MP, 1);
% else:
                logrho_gemm(&f, zs, ns, lrs, scratch);
% endif
                const double* ws = weight ? weight + n0 + s0 : 0;
                ll[t] += resp_rows(lrs, f.MP, ns, ws, hard, shared.arg + s0);
% if L.cvtype == "full":
                if (hard) onehot_rows(lrs, f.MP, ns, shared.arg + s0, ws);
% endif
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t g = 0; g < groups; ++g) {
                if (!ok) continue;
                const int64_t k0 = g * ${group}, k1 = k0 + ${group} < M ? k0 + ${group} : M;
                block_stats_${lay}(&f, k0, k1, nb, B, &shared, &shared, scratch,
                                   scratch + scratch_size, hard, weight ? weight + n0 : 0);
            }
        }
        free(scratch);
        EM_FTZ_END
    }
    }
    if (!err) reduce_out(&shared, 1, M, out_N, out_S1, out_S2);
    work_free(&shared);
% endif
    if (!err) {
        double total = 0.0;
        for (int t = 0; t < nt; ++t) total += ll[t];
        *out_ll = total;
    }
${epilogue()}\
}

extern "C" int score_${v.name}(${sig["score"]}) {
    const int B = ${v.block};
${prologue(exact="0", sh="0")}\
% if lay == "kdot":
    f.dot = f.shared && !f.nfar && mode == 2;   // argmax only: scores are the difference form's
% endif
    if (!err) {
#pragma omp parallel num_threads(nt)
    {
        EM_FTZ_BEGIN
        const int t = omp_get_thread_num();
        Work* w = works + t;
        const int ok = work_alloc(w, &f, B, 0) == 0;
        if (!ok) {
#pragma omp atomic write
            err = 1;
        }
#pragma omp for schedule(static)
        for (int64_t blk = 0; blk < nblocks; ++blk) {
            if (!ok) continue;
            const int64_t n0 = blk * B;
            const int nb = (int)(N - n0 < B ? N - n0 : B);
            block_logrho_${lay}(&f, X, n0, nb, B, w);
            block_score_${lay}(&f, nb, B, n0, mode, w, out_ll, out_post, out_arg);
        }
        EM_FTZ_END
    }
    }
${epilogue()}\
}

% endfor
