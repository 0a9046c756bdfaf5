## log rho for diagonal covariances: -1/2 sum_d ((x_d - mu_kd) sqrt(p_kd))^2 + lc_k, computed as
## u = x sqrt(p) - mu sqrt(p) (one FMA) and u*u (another) -- the exact difference form; the
## few components it cannot resolve (Form.far) are redone by logrho_far.
## kvec: components in lanes (rows layout); nvec: samples in lanes (columns layout); kdot: kvec
## in the expanded form where every component has the same precision (k-means).
<%page args="L, layouts"/>\
<%
    SV, KC = L.nvec
%>\
<%def name="feature_loop(accs, body, V='vT')">\
## for d < D around body; over 64 features, float sums go through 32-feature partials
% if L.split:
            ${V} ${", ".join(f"tot_{a}" for a in accs)};
            ${" ".join(f"tot_{a} = ({V}){{}};" for a in accs)}
            for (int d0 = 0; d0 < D; d0 += 32) {
            const int d1 = D < d0 + 32 ? D : d0 + 32;
            ${" ".join(f"{a} = ({V}){{}};" for a in accs)}
            for (int d = d0; d < d1; ++d) {
${body}\
            }
            ${" ".join(f"tot_{a} += {a};" for a in accs)}
            }
            ${" ".join(f"{a} = tot_{a};" for a in accs)}
% else:
            for (int d = 0; d < D; ++d) {
${body}\
            }
% endif
</%def>\
<%def name="panel_sweep(name, TB, KP, S='T', lanes='VW', MP='f->MP')">\
## logrho_<name>: the tile's samples ${TB} at a time, components a panel of <name>_panel<w> at a
## time; S the scalar type, lanes per vector, MP the padded components
static inline void logrho_${name}(const Form* f, const ${S}* z, int nb, ${S}* lr) {
    const int64_t npv = ${MP} / ${lanes};
    for (int b0 = 0; b0 < nb; b0 += ${TB}) {
        const int nt = nb - b0 < ${TB} ? nb - b0 : ${TB};
        int64_t c0 = 0;
        for (; c0 + ${KP} <= npv; c0 += ${KP}) ${name}_panel${KP}(f, z, b0, nt, c0 * ${lanes}, lr);
% if KP > 1:
        switch (npv - c0) {
% for w in range(1, KP):
        case ${w}: ${name}_panel${w}(f, z, b0, nt, c0 * ${lanes}, lr); break;
% endfor
        default: break;
        }
% endif
    }
}
</%def>\
// log rho of the far components (Form.far) for rows [n0, n0 + nb) of X, from x - mu in double,
// over what the fast form wrote: lr[b * sb + k * sk]
static inline void logrho_far(const Form* f, const T* X, int64_t n0, int nb, T* lr, size_t sb,
                              size_t sk) {
    for (int64_t i = 0; i < f->nfar; ++i) {
        const int64_t k = f->far[i];
        const double* m = f->fmu + (size_t)i * D;
        const double* p = f->fp + (size_t)i * D;
        for (int b = 0; b < nb; ++b) {
            const T* x = X + (n0 + b) * (int64_t)D;
            double q = 0.0;
            for (int d = 0; d < D; ++d) { const double u = (double)x[d] - m[d]; q += u * u * p[d]; }
            lr[(size_t)b * sb + (size_t)k * sk] = (T)((double)f->lc[k] - 0.5 * q);
        }
    }
}

% if "kvec" in layouts or "kdot" in layouts:
<% TB, KP = L.kvec %>\
// kvec: ${TB} samples x a panel of w <= ${KP} vectors of components in registers; z [nb][ZW]
// centred -> lr [nb][MP]
% for w in range(1, KP + 1):
<%
    accs = [f"a{t}_{c}" for t in range(TB) for c in range(w)]
    body = "                const T* md = m + (size_t)d * MP; const T* pd = p + (size_t)d * MP;\n"
    body += "".join(
        f"                const vT m{c} = vload(md + {c * L.lanes}), p{c} = vload(pd + {c * L.lanes});\n"
        for c in range(w))
    body += "".join(
        f"                {{ const T xd = x{t}[d]; "
        + " ".join(f"const vT u{c} = xd * p{c} - m{c}; a{t}_{c} += u{c} * u{c};" for c in range(w))
        + " }\n" for t in range(TB))
%>\
static inline void kvec_panel${w}(const Form* f, const T* z, int b0, int nt, int64_t k0, T* lr) {
    const int64_t MP = f->MP;
% for t in range(TB):
    const T* x${t} = z + (size_t)(b0 + (${t} < nt ? ${t} : 0)) * ZW;
% endfor
    vT ${", ".join(accs)};
    ${" ".join(f"{a} = vzero();" for a in accs)}
    {
        const T* m = f->muT + k0;
        const T* p = f->PT + k0;
${feature_loop(accs, body)}\
    }
% for t in range(TB):
    if (${t} < nt) {
        T* out = lr + (size_t)(b0 + ${t}) * MP + k0;
% for c in range(w):
        vstore(out + ${c * L.lanes}, vload(f->lc + k0 + ${c * L.lanes}) - (T)0.5 * a${t}_${c});
% endfor
    }
% endfor
}

% endfor
${panel_sweep('kvec', TB, KP)}\
% endif
% if "kdot" in layouts:
<% TB, KP = L.kdot; mixed = L.T == "double" %>\
// kdot, for a precision p shared by every component (Form.shared; k-means' identity): with
// x' = x sqrt(p) and m_k = mu_k sqrt(p), -1/2 |x' - m_k|^2 = x.(mu_k p) - 1/2 |m_k|^2 - 1/2 |x'|^2:
// one FMA per feature and component (x broadcast from the tile) where kvec has two.  The last
// term is the same for every component and is left out: the scores are log rho up to a
// per-sample constant, which picks each sample's component (hard passes, argmax) and nothing
// else; resp_rows_kdot takes the chosen one's value from the difference form.  The expanded
// form rounds with |x'|^2 + |m_k|^2 (the data are centred, which keeps both small): a near tie
// may go the other way, as in any GEMM-based k-means.  ${TB} samples x a panel of w <= ${KP}
// vectors; kdot_panel<w> in T${", kdotf_panel<w> in float (float64 data: see kdot_pick)" if mixed else ""}.
<%def name="kdot_panels(name, TB, KP, S, V, load, store, lanes, vlanes, MP, dT, dc, zw)">\
% for w in range(1, KP + 1):
<%
    accs = [f"a{t}_{c}" for t in range(TB) for c in range(w)]
    body = f"                const {S}* md = m + (size_t)d * MP;\n"
    body += "".join(f"                const {V} m{c} = {load}(md + {c * lanes});\n" for c in range(w))
    body += "".join(
        "                " + " ".join(f"a{t}_{c} += x{t}[d] * m{c};" for c in range(w)) + "\n"
        for t in range(TB))
%>\
static inline void ${name}_panel${w}(const Form* f, const ${S}* z, int b0, int nt, int64_t k0,
                                  ${S}* lr) {
    const int64_t MP = ${MP};
% for t in range(TB):
    const ${S}* x${t} = z + (size_t)(b0 + (${t} < nt ? ${t} : 0)) * ${zw};
% endfor
    ${V} ${", ".join(accs)};
    ${" ".join(f"{a} = ({V}){{}};" for a in accs)}
    {
        const ${S}* m = ${dT} + k0;
${feature_loop(accs, body, V)}\
    }
% for t in range(TB):
    if (${t} < nt) {
        ${S}* out = lr + (size_t)(b0 + ${t}) * MP + k0;
% for c in range(w):
        ${store}(out + ${c * lanes}, ${load}(${dc} + k0 + ${c * lanes}) + a${t}_${c});
% endfor
    }
% endfor
}

% endfor
${panel_sweep(name, TB, KP, S, vlanes, MP)}\
</%def>\
${kdot_panels("kdot", TB, KP, "T", "vT", "vload", "vstore", L.lanes, "VW", "f->MP", "f->dT", "f->dc", "ZW")}
% if mixed:
${kdot_panels("kdotf", TB, KP, "float", "vF", "fload", "fstore", 2 * L.lanes, "FW", "f->MPF", "f->dTf", "f->dcf", "DP")}
// A float row of scores [MPF]: the first component reaching its maximum, and in *margin the
// maximum less the runner-up (the row without that entry)
static inline int64_t rowf_pick(const float* r, int64_t MPF, float* best, float* margin) {
    int64_t arg;
    *best = rowf_max_arg(r, MPF, &arg);
    vIF lane;
    for (int l = 0; l < FW; ++l) lane[l] = l;
    const vF none = (vF){} - INFINITY;
    vF s = none;
    for (int64_t c = 0; c < MPF; c += FW) {
        const vF v = fload(r + c);
        const vF u = lane + (int32_t)c == (int32_t)arg ? none : v;
        s = u > s ? u : s;
    }
    *margin = *best - fmax_h(s);
    return arg;
}
% endif

// kdot's pick: each sample of the tile z [nb][ZW] in its component, arg [nb]; lr [nb][MP]
// scratch.  float64 data are scored in float first (zf [nb][DP], lrf [nb][MPF] scratch: half
// the FMAs at the same width); a sample whose runner-up lies within twice the float scores'
// rounding bound (Form.ebase, eslope), or whose best score is not finite, is scored again in
// double, so every pick is the double form's.
% if mixed:
static inline void kdot_pick(const Form* f, const T* z, int nb, T* lr, int64_t* arg, float* zf,
                             float* lrf) {
% else:
static inline void kdot_pick(const Form* f, const T* z, int nb, T* lr, int64_t* arg) {
% endif
% if not mixed:
    logrho_kdot(f, z, nb, lr);
    for (int b = 0; b < nb; ++b) row_max_arg(lr + (size_t)b * f->MP, f->MP, arg + b);
% else:
    for (int b = 0; b < nb; ++b)
        for (int v = 0; v < DP; v += VW) {
            const vFh h = __builtin_convertvector(vload(z + (size_t)b * ZW + v), vFh);
            memcpy(zf + (size_t)b * DP + v, &h, sizeof h);
        }
    logrho_kdotf(f, zf, nb, lrf);
    for (int b = 0; b < nb; ++b) {
        float best, margin;
        arg[b] = rowf_pick(lrf + (size_t)b * f->MPF, f->MPF, &best, &margin);
        const T* x = z + (size_t)b * ZW;      // |x - c| over the features (x*x from column D)
        vT q = vzero();
        for (int v = 0; v + VW <= D; v += VW) q += vload(x + v) * vload(x + v);
        double xx = vsum(q);
        for (int d = D / VW * VW; d < D; ++d) xx += x[d] * x[d];
        if (margin > f->ebase + f->eslope * sqrt(xx) && best < 3e38f && best > -3e38f)
            continue;
        logrho_kdot(f, z + (size_t)b * ZW, 1, lr + (size_t)b * f->MP);
        row_max_arg(lr + (size_t)b * f->MP, f->MP, arg + b);
    }
% endif
}

// The weighted log-likelihood of the samples' components arg (kdot_pick's) from the
// difference form x' - m_k, in vectors over the features (the tile's columns past D and the
// parameters' padding meet zero precision).
static inline double resp_rows_kdot(const Form* f, const T* z, int nb, const double* w,
                                    const int64_t* arg) {
    double ll = 0.0;
    for (int b = 0; b < nb; ++b) {
        const int64_t k = arg[b];
        const T* x = z + (size_t)b * ZW;
        const T* m = f->mu + (size_t)k * DP;
        vT q = vzero();
        for (int v = 0; v < DP; v += VW) {
            const vT u = vload(x + v) * vload(f->P + v) - vload(m + v);
            q += u * u;
        }
        const T wb = w ? (T)w[b] : (T)1;
        ll += (double)wb * (double)(f->lc[k] - (T)0.5 * vsum(q));
    }
    return ll;
}
% endif
% if "nvec" in layouts:
<%
    accs = [f"a{s}_{c}" for s in range(SV) for c in range(KC)]
    body = "".join(f"                const vT x{s} = vload(xt + (size_t)d * B + o{s});\n" for s in range(SV))
    body += "".join(
        f"                {{ const T md = m{c}[d], pd = p{c}[d]; "
        + " ".join(f"const vT u{s} = x{s} * pd - md; a{s}_{c} += u{s} * u{s};" for s in range(SV))
        + " }\n" for c in range(KC))
%>\

// nvec: ${SV} vectors of samples x ${KC} components in registers; xt [D][B] (samples in lanes)
// -> lr [M][B]
static inline void logrho_nvec(const Form* f, const T* xt, int B, int nb, T* lr) {
    const int nsv = (nb + VW - 1) / VW;
    for (int64_t k0 = 0; k0 < f->M; k0 += ${KC}) {
        const int nk = f->M - k0 < ${KC} ? (int)(f->M - k0) : ${KC};
% for c in range(KC):
        const T* m${c} = f->mu + (size_t)(k0 + (${c} < nk ? ${c} : 0)) * DP;
        const T* p${c} = f->P + (size_t)(k0 + (${c} < nk ? ${c} : 0)) * DP;
% endfor
        for (int s0 = 0; s0 < nsv; s0 += ${SV}) {
            const int ns = nsv - s0 < ${SV} ? nsv - s0 : ${SV};
% for s in range(SV):
            const size_t o${s} = (size_t)(s0 + (${s} < ns ? ${s} : 0)) * VW;
% endfor
            vT ${", ".join(accs)};
            ${" ".join(f"{a} = vzero();" for a in accs)}
${feature_loop(accs, body)}\
% for c in range(KC):
            if (${c} < nk) {
                const T l = f->lc[k0 + ${c}];
                T* out = lr + (size_t)(k0 + ${c}) * B;
% for s in range(SV):
                if (${s} < ns) vstore(out + o${s}, l - (T)0.5 * a${s}_${c});
% endfor
            }
% endfor
        }
    }
}
% endif
