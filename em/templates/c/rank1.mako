## The register tile of every GEMM-shaped loop: acc<r>_<v> += a(r, i) * b(i, v) for i < n,
## rows x vecs accumulators held in registers (sizes from em.specializer.layout).  The caller
## gives C expressions as Python functions -- a(r, i): a scalar, b(i, v): the address of a
## vector -- and reads the accumulators acc<r>_<v> in its <%call> body (the epilogue).
<%def name="rank1(rows, vecs, n, a, b, i='i')">\
        {
            vT ${", ".join(f"acc{r}_{v}" for r in range(rows) for v in range(vecs))};
% for r in range(rows):
            ${" ".join(f"acc{r}_{v} = vzero();" for v in range(vecs))}
% endfor
            for (int64_t ${i} = 0; ${i} < ${n}; ++${i}) {
% for v in range(vecs):
                const vT b${v} = vload(${b(i, v)});
% endfor
% for r in range(rows):
                { const T a = ${a(r, i)}; ${" ".join(f"acc{r}_{v} += a * b{v};" for v in range(vecs))} }
% endfor
            }
${caller.body()}\
        }
</%def>
