## log rho for full covariances: lc_k - 1/2 ||(x - mu_k) U_k||^2 with U_k the upper Cholesky
## factor of the precision, as a register-blocked GEMM: gemm (samples broadcast, columns of U in
## lanes; rows layout lr [nb][MP]) or gcol (samples in lanes, entries of U broadcast; exact over
## the triangle; columns layout lr [M][B]).
<%page args="L, layouts"/>\
<%namespace name="k" file="rank1.mako"/>\
<% R = L.gemm_rows %>\
% if "gemm" in layouts:
// y = (x - mu_k) U_k, ||y||^2: ${R} samples x one vector of columns of U per panel; a panel
// needs rows of U only down to its last column (U is upper triangular).  z [nb][ZW] centred;
// diff: scratch [nb + ${R}][DP] (a tile reads whole rows past nb: their results are dropped, and
// one base pointer with constant offsets keeps the tile's addresses out of the stack).
static inline void logrho_gemm(const Form* f, const T* z, int nb, T* lr, T* diff) {
    const int64_t M = f->M, MP = f->MP;
    for (int b = 0; b < nb; ++b)
        for (int64_t c = M; c < MP; ++c) lr[(size_t)b * MP + c] = (T)-INFINITY;
    for (int64_t c = 0; c < M; ++c) {
        const T* m = f->mu + (size_t)c * DP;
        const T* U = f->P + (size_t)c * DP * DP;
        for (int b = 0; b < nb; ++b)
            for (int j = 0; j < DP; j += VW)
                vstore(diff + (size_t)b * DP + j, vload(z + (size_t)b * ZW + j) - vload(m + j));
        for (int b0 = 0; b0 < nb; b0 += ${R}) {
            const int nt = nb - b0 < ${R} ? nb - b0 : ${R};
            const T* dt = diff + (size_t)b0 * DP;
            vT q[${R}];
            for (int r = 0; r < ${R}; ++r) q[r] = vzero();
            for (int v0 = 0; v0 < DP; v0 += VW) {
                const int rows = D < v0 + VW ? D : v0 + VW;
<%k:rank1 rows="${R}" vecs="${1}" n="rows" a="${lambda r, i: f'dt[{r} * DP + {i}]'}" b="${lambda i, v: f'U + (size_t){i} * DP + v0'}">
% for r in range(R):
            q[${r}] += acc${r}_0 * acc${r}_0;
% endfor
</%k:rank1>
            }
            for (int r = 0; r < nt; ++r) lr[(size_t)(b0 + r) * MP + c] = f->lc[c] - (T)0.5 * vsum(q[r]);
        }
    }
}
% endif
% if "gcol" in layouts:
<% J, S = L.gcol_tile %>\

// The same with samples in lanes, exact over the triangle: y_j = sum_{i <= j} (x_i - mu_i) U_ij
// for a tile of ${J} columns of U x ${S} vectors of samples: rows of U above the tile's columns,
// then the upper triangle of its diagonal block.  xt [D][B] centred (samples in lanes) ->
// lr [M][B]; dt: scratch [D][${S * L.lanes}], x - mu of ${S} vectors of samples at a time (in L1
// while every column tile reads it: the whole block's x - mu written per component went out
// to L2, a fifth of the time).
static inline void logrho_gcol(const Form* f, const T* xt, int B, int nb, T* lr, T* dt) {
    const int nsv = (nb + VW - 1) / VW;
    for (int64_t c = 0; c < f->M; ++c) {
        const T* m = f->mu + (size_t)c * DP;
        const T* U = f->P + (size_t)c * DP * DP;
        const T l = f->lc[c];
        for (int s0 = 0; s0 < nsv; s0 += ${S}) {        // ${S} divides B / VW
            for (int i = 0; i < D; ++i) {
% for v in range(S):
                vstore(dt + (size_t)i * ${S * L.lanes} + ${v * L.lanes}, vload(xt + (size_t)i * B + (s0 + ${v}) * VW) - m[i]);
% endfor
            }
            vT ${", ".join(f"q{v} = vzero()" for v in range(S))};
            for (int j0 = 0; j0 < D; j0 += ${J}) {
                const T* Uj = U + j0;       // columns past D (or DP) are read but never summed
<%k:rank1 rows="${J}" vecs="${S}" n="j0" a="${lambda r, i: f'Uj[(size_t){i} * DP + {r}]'}" b="${lambda i, v: f'dt + (size_t){i} * {S * L.lanes} + {v * L.lanes}'}">
## rows j0.. of the tile: U's diagonal block, its upper triangle only
% for d in range(J):
            if (j0 + ${d} < D) {
                const T* dd = dt + (size_t)(j0 + ${d}) * ${S * L.lanes};
                const T* ud = Uj + (size_t)(j0 + ${d}) * DP;
                ${" ".join(f"const vT b{v} = vload(dd + {v * L.lanes});" for v in range(S))}
% for r in range(d, J):
                { const T a = ud[${r}]; ${" ".join(f"acc{r}_{v} += a * b{v};" for v in range(S))} }
% endfor
            }
% endfor
% for v in range(S):
% for r in range(J):
                if (j0 + ${r} < D) q${v} += acc${r}_${v} * acc${r}_${v};
% endfor
% endfor
</%k:rank1>
            }
% for v in range(S):
            if (s0 + ${v} < nsv) vstore(lr + (size_t)c * B + (s0 + ${v}) * VW, l - (T)0.5 * q${v});
% endfor
        }
    }
}
% endif
