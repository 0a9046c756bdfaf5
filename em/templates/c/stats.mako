## Sufficient statistics of a tile from its responsibilities R, summed over the tile in T and
## added to double accumulators once per tile.
<%page args="L, layouts"/>\
<%namespace name="k" file="rank1.mako"/>\
<%namespace name="lanes" file="lanes.mako"/>\
% if L.cvtype == "diag":
<% KR, NR = L.stats_tile %>\
// N_k over a block, n [MP]: sums of the rows of R [nb][MP] (vertical adds), or of each row of
// R [M][B] (samples in lanes; padding lanes hold 0)
static inline void counts_rows(const T* R, int64_t MP, int nb, T* n) {
    for (int64_t c = 0; c < MP; c += VW) {
        vT s = vzero();
        for (int b = 0; b < nb; ++b) s += vload(R + (size_t)b * MP + c);
        vstore(n + c, s);
    }
}

static inline void counts_cols(const T* R, int64_t M, int B, int nb, T* n) {
    const int nsv = (nb + VW - 1) / VW;
    for (int64_t k = 0; k < M; ++k) {
        vT s = vzero();
        for (int v = 0; v < nsv; ++v) s += vload(R + (size_t)k * B + v * VW);
        n[k] = vsum(s);
    }
}

// [S1 | S2]_k about mc_k of one component: sum_b r_bk (x_b - mc_k) and its squares, explicitly
// (the exact path, for components far from the data centre; see Form.exact)
static inline void stats_shifted(const Form* f, int64_t k, const T* z, int nb, const T* R,
                                 int64_t rb, int64_t rk, double* aZ) {
    const T* r = R + (size_t)k * rk;
    const T* m = f->mc + (size_t)k * DP;
    vT s1[DP / VW], s2[DP / VW];
    for (int v = 0; v < DP / VW; ++v) s1[v] = s2[v] = vzero();
    for (int b = 0; b < nb; ++b) {
        const T rv = r[(size_t)b * rb];
        if (rv == 0) continue;
        for (int v = 0; v < DP / VW; ++v) {
            const vT u = vload(z + (size_t)b * ZW + v * VW) - vload(m + v * VW);
            const vT t = rv * u;
            s1[v] += t;
            s2[v] += t * u;
        }
    }
    double* o = aZ + (size_t)k * ZW;
    for (int d = 0; d < D; ++d) {
        o[d] += (double)s1[d / VW][d % VW];
        o[D + d] += (double)s2[d / VW][d % VW];
    }
}

// Hard assignment (sample b in component arg[b] alone, weight w_b or 1): N_k and
// [S1 | S2]_k += w_b [u | u^2] for the samples of components [k0, k1), u the centred x, or
// x - mc_k if exact[k] -- a scatter of nb rows into double accumulators instead of the GEMM
// R^T Z over every component.
static inline void stats_hard(const Form* f, int64_t k0, int64_t k1, const T* z, int nb,
                              const int64_t* arg, const double* w, double* aN, double* aZ) {
    for (int b = 0; b < nb; ++b) {
        const int64_t k = arg[b];
        const T r = k >= k0 && k < k1 ? (w ? (T)w[b] : (T)1) : (T)0;
        if (r == 0) continue;
        const T* x = z + (size_t)b * ZW;
        double* o = aZ + (size_t)k * ZW;
        aN[k] += (double)r;
        if (f->exact[k]) {
            const T* m = f->mc + (size_t)k * DP;
            for (int d = 0; d < D; ++d) {
                const T u = x[d] - m[d], t = r * u;
                o[d] += (double)t;
                o[D + d] += (double)(t * u);
            }
        } else {
            for (int d = 0; d < ZW; ++d) o[d] += (double)(r * x[d]);   // whole vectors: past 2D, 0
        }
    }
}

// [S1 | S2]_k += sum_b r_bk [x_b | x_b^2] for components [k0, k1): the GEMM R^T Z, ${KR}
// components x ${NR} vectors of the tile row in registers, about the data centre; components
// marked exact go through stats_shifted instead.  r_bk = R[b * rb + k * rk] (rows layout:
// rb = MP, rk = 1; columns layout: rb = 1, rk = B); n: the block's N_k (from counts_*).
// aN [M], aZ [M][ZW].
static inline void stats_tile(const Form* f, int64_t k0, int64_t k1, const T* z, int nb,
                              const T* R, int64_t rb, int64_t rk, const T* n, double* aN,
                              double* aZ) {
    for (int64_t c0 = k0; c0 < k1; c0 += ${KR}) {
        const int nk = k1 - c0 < ${KR} ? (int)(k1 - c0) : ${KR};
% for c in range(KR):
        const T* r${c} = R + (size_t)(c0 + (${c} < nk ? ${c} : 0)) * rk;
% endfor
        int fast = 0;
        for (int c = 0; c < nk; ++c) {
            aN[c0 + c] += n[c0 + c];
            if (n[c0 + c] == 0) continue;      // hard assignment: often empty
            if (f->exact[c0 + c]) stats_shifted(f, c0 + c, z, nb, R, rb, rk, aZ);
            else fast = 1;
        }
        if (!fast) continue;
<%
    full = [p for p in L.stats_panels if p.nv == NR]
    rest = [p for p in L.stats_panels if p.nv != NR]
    looped = len(full) > 2            # many panels (large D): one run-time loop, not unrolled
    panels = ([(None, NR)] if looped else [(p.v0 * L.lanes, p.nv) for p in full]) + \
        [(p.v0 * L.lanes, p.nv) for p in rest]
%>\
% for off, nv in panels:
% if off is None:
        for (int p0 = 0; p0 < ${len(full) * NR * L.lanes}; p0 += ${NR * L.lanes})
% endif
<% col = "p0" if off is None else str(off) %>\
<%k:rank1 rows="${KR}" vecs="${nv}" n="nb" i="b" a="${lambda r, i: f'r{r}[(size_t){i} * rb]'}" b="${lambda i, v, col=col: f'z + (size_t){i} * ZW + {col} + {v * L.lanes}'}">
% for c in range(KR):
            if (${c} < nk && !f->exact[c0 + ${c}]) {
                double* o = aZ + (size_t)(c0 + ${c}) * ZW + ${col};
% for v in range(nv):
                vadd_to(o + ${v * L.lanes}, acc${c}_${v});
% endfor
            }
% endfor
</%k:rank1>
% endfor
    }
}
% else:
<% SR = L.s2_rows %>\
// For each component k of [k0, k1): N_k, S1_k += sum_b r_bk u_b and the upper triangle of
// S2_k += sum_b (r_bk u_b) u_b^T, where u = x - mc_k if exact[k] (about its mean), else the
// centred x (about c); ${SR} rows x one vector of columns in registers (a panel of columns needs
// rows only down to its last column).  r_bk = R[b * rb + k * rk]; aN [M], aS1 [M][DP],
// aS2 [M][D][DP]; rx, ub: scratch [nb + ${SR}][DP] (a row tile reads up to ${SR} entries past
// its last row; their sums are dropped).
static inline void stats_tile(const Form* f, int64_t k0, int64_t k1, const T* z, int nb,
                              const T* R, int64_t rb, int64_t rk, double* aN, double* aS1,
                              double* aS2, T* rx, T* ub) {
    for (int64_t c = k0; c < k1; ++c) {
        T nk = 0;
        vT s1[DP / VW];
        const int exact = f->exact[c];
        const T* m = f->mc + (size_t)c * DP;
        for (int v = 0; v < DP / VW; ++v) s1[v] = vzero();
        for (int b = 0; b < nb; ++b) {
            const T r = R[(size_t)b * rb + (size_t)c * rk];
            nk += r;
            for (int v = 0; v < DP / VW; ++v) {
                vT u = vload(z + (size_t)b * ZW + v * VW);
                if (exact) {
                    u -= vload(m + v * VW);
                    vstore(ub + (size_t)b * DP + v * VW, u);
                }
                const vT y = r * u;
                vstore(rx + (size_t)b * DP + v * VW, y);
                s1[v] += y;
            }
        }
        const T* us = exact ? ub : z;          // rows of u (ZW = DP for full)
        aN[c] += nk;
        for (int v = 0; v < DP / VW; ++v) vadd_to(aS1 + (size_t)c * DP + v * VW, s1[v]);
        if (nk == 0) continue;                 // hard assignment leaves most components empty
        double* out = aS2 + (size_t)c * D * DP;
        for (int v0 = 0; v0 < DP; v0 += VW) {
            const int rows = D < v0 + VW ? D : v0 + VW;
            for (int i0 = 0; i0 < rows; i0 += ${SR}) {
                const T* rxi = rx + i0;
<%k:rank1 rows="${SR}" vecs="${1}" n="nb" i="b" a="${lambda r, i: f'rxi[(size_t){i} * DP + {r}]'}" b="${lambda i, v: f'us + (size_t){i} * DP + v0'}">
% for r in range(SR):
            if (i0 + ${r} < rows) vadd_to(out + (size_t)(i0 + ${r}) * DP + v0, acc${r}_0);
% endfor
</%k:rank1>
            }
        }
    }
}
% endif
% if "gcol" in layouts:
<%
    I = L.s2_cols_tile
    accs = [f"a{a}_{b}" for a in range(I) for b in range(I)]
    VW = L.lanes
%>\

<%def name="s2_tile(pairs, tj)">\
## entries (a, b) of the tile of S2 at rows ti.., columns ${tj}.. (pairs grouped by b): r u of
## row ti + a (rx) times u of row ${tj} + b along the block's samples, then across lanes
{
                vT ${", ".join(f"a{x}_{y} = vzero()" for x, y in pairs)};
                for (int s = 0; s < nsv; ++s) {
% for x in sorted({x for x, _ in pairs}):
                    const vT p${x} = vload(rx + ${x} * (size_t)B + s * VW);
% endfor
% for y in sorted({y for _, y in pairs}):
                    { const vT q = vload(us + (size_t)(${tj} + ${y}) * B + s * VW); ${" ".join(f"a{x}_{y} += p{x} * q;" for x, yy in pairs if yy == y)} }
% endfor
                }
% for g in range(0, len(pairs), L.lanes):
${lanes.lane_sums(L.lanes, [f"a{x}_{y}" for x, y in pairs[g:g + L.lanes]], f"(sums + {g})")}\
% endfor
% for i, (x, y) in enumerate(pairs):
                if (ti + ${x} < D && ${tj} + ${y} < D) out[(size_t)(ti + ${x}) * DP + ${tj} + ${y}] += sums[${i}];
% endfor
            }\
</%def>\
// For each component k of [k0, k1), samples in lanes: N_k, S1_k and the upper triangle of
// S2_k = sum_b (r_bk u_b) u_b^T with u = x - mc_k if exact[k] (about its mean), else the centred
// x (about c), exact over the triangle: tiles of ${I} x ${I} entries whose accumulators run along
// the samples and are summed across lanes once per block.  A row of tiles takes its ${I} rows of
// r u (and their S1) into rx [${I}][B], in L1 while its tiles read them (r u of the whole block
// went out to L2, a fifth of the time).  R columns layout [M][B]; xt [DP + 8][B] (rows past D
// are zero); rx, ut: scratch [DP + 8][B] (ut: x - mc_k of an exact component).
static inline void stats_tri(const Form* f, int64_t k0, int64_t k1, const T* xt, int B, int nb,
                             const T* R, double* aN, double* aS1, double* aS2, T* rx, T* ut) {
    const int nsv = (nb + VW - 1) / VW;
    T sums[${max(len(accs), VW)}];
    for (int64_t c = k0; c < k1; ++c) {
        const T* r = R + (size_t)c * B;
        vT nv = vzero();
        for (int s = 0; s < nsv; ++s) nv += vload(r + s * VW);
        const T nk = vsum(nv);
        aN[c] += nk;
        if (nk == 0) continue;                 // hard assignment leaves most components empty
        const T* us = xt;
        if (f->exact[c]) {                     // rows past D stay zero in ut
            const T* m = f->mc + (size_t)c * DP;
            for (int i = 0; i < D; ++i)
                for (int s = 0; s < nsv; ++s)
                    vstore(ut + (size_t)i * B + s * VW, vload(xt + (size_t)i * B + s * VW) - m[i]);
            us = ut;
        }
        double* out = aS2 + (size_t)c * D * DP;
        for (int ti = 0; ti < D; ti += ${I}) {
            vT ${", ".join(f"s1_{a} = vzero()" for a in range(I))};
            for (int s = 0; s < nsv; ++s) {
                const vT rs = vload(r + s * VW);
% for a in range(I):
                { const vT y = rs * vload(us + (size_t)(ti + ${a}) * B + s * VW); vstore(rx + ${a} * (size_t)B + s * VW, y); s1_${a} += y; }
% endfor
            }
% for g in range(0, I, VW):
${lanes.lane_sums(VW, [f"s1_{a}" for a in range(I)][g:g + VW], f"(sums + {g})")}\
% endfor
            for (int a = 0; a < ${I} && ti + a < D; ++a) aS1[(size_t)c * DP + ti + a] += sums[a];
            ${s2_tile([(x, y) for y in range(I) for x in range(y + 1)], "ti")}
            for (int tj = ti + ${I}; tj < D; tj += ${I})
                ${s2_tile([(x, y) for y in range(I) for x in range(I)], "tj")}
        }
    }
}
% endif
