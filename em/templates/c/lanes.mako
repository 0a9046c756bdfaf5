## Lane sums of many vectors at once (for accumulators that run along samples in the lanes).
<%!
    from em.specializer.layout import butterfly
%>\
<%def name="lane_sums(lanes, names, out)">\
## ${out}[i] = the sum of the lanes of vector names[i], for up to `lanes` vectors at once: a
## butterfly planned by em.specializer.layout.butterfly (2 shuffles and an add per fold).
<% bf = butterfly(lanes, len(names)) %>\
            {
% for level in bf.steps:
% for a, b, o, lo, hi in level:
<%
    va = names[a] if a < len(names) else f"bf{a}"
    vb = "vzero()" if b is None else (names[b] if b < len(names) else f"bf{b}")
%>\
                const vT bf${o} = EM_SHUFFLE2(${va}, ${vb}, ${", ".join(map(str, lo))}) + EM_SHUFFLE2(${va}, ${vb}, ${", ".join(map(str, hi))});
% endfor
% endfor
% for l, owner in enumerate(bf.owner):
% if owner is not None:
                ${out}[${owner}] = bf${bf.result}[${l}];
% endif
% endfor
            }
</%def>
