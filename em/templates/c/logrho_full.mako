## log rho for full covariances: lc_k - 1/2 ||(x - mu_k) U_k||^2 with U_k the upper Cholesky
## factor of the precision, as a register-blocked GEMM (rows layout lr [nb][MP]).
<%page args="L, layouts"/>\
<%namespace name="k" file="rank1.mako"/>\
<% R = L.gemm_rows %>\
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
