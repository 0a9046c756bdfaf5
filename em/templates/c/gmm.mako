## C++/OpenMP kernels of the kernel contract for one shape family: ${cvtype}, D=${D}, ${dtype},
## any number of components M (a run-time argument).  Rendered by em/specializer/render.py from
## the dict of em.backends.c_backend.render_params (the backend renders translation units of
## some variants each, c_backend.units, and compiles them side by side); each width gets its own
## namespace, laid out by em.specializer.layout.Layout.  One file per job:
##   simd.mako     vector types, loads, horizontal reductions, exp/log (the only one that knows
##                 the width)
##   form.mako     parameters in kernel form; data tiles
##   rows.mako     log rho -> responsibilities / scores (row and column layouts)
##   rank1.mako    the register-tile rank-1 update shared by the GEMM-shaped loops
##   logrho_diag.mako, logrho_full.mako, stats.mako, drivers.mako
<%! from em.specializer.layout import Layout %>\
<%
    T = "float" if dtype == "float32" else "double"
    widths = sorted({v.vbytes for v in variants}, reverse=True)
%>\
// em generated kernels: cvtype=${cvtype} D=${D} dtype=${dtype}, M at run time
// target: ${target["isa"]} (-march=${target["march"]}), ${target["registers"]} vector registers; widths: ${", ".join(f"{w} bytes" for w in widths)}
// variants: ${", ".join(v.name for v in variants)}
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
// flush denormals to zero inside kernels: tiny responsibilities would otherwise take microcode
// assists that make a pass tens of times slower
#if defined(__SSE__)
#include <xmmintrin.h>
#define EM_FTZ_BEGIN const unsigned em_csr = _mm_getcsr(); _mm_setcsr(em_csr | 0x8040);
#define EM_FTZ_END _mm_setcsr(em_csr);
#elif defined(__aarch64__)
#define EM_FTZ_BEGIN uint64_t em_fpcr; __asm__ volatile("mrs %0, fpcr" : "=r"(em_fpcr)); \
    __asm__ volatile("msr fpcr, %0" :: "r"(em_fpcr | (1ull << 24)));
#define EM_FTZ_END __asm__ volatile("msr fpcr, %0" :: "r"(em_fpcr));
#else
#define EM_FTZ_BEGIN
#define EM_FTZ_END
#endif

typedef ${T} T;
enum { D = ${D} };

// zeroed, 64-byte aligned; NULL on failure
static void* em_zalloc(size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    void* p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes ? bytes : 64);
    return p;
}
static T* em_alloc(size_t count) { return (T*)em_zalloc(count * sizeof(T)); }
static double* em_alloc_d(size_t count) { return (double*)em_zalloc(count * sizeof(double)); }

// OpenMP's thread count for a call from the calling thread (the backend caps it by the work);
// weak: every translation unit of a library defines it
extern "C" __attribute__((weak)) int em_max_threads(void) { return omp_get_max_threads(); }
% for vb in widths:
<% L = Layout(D, cvtype, dtype, vb, target["registers"]) %>
// ======================================================================== ${vb}-byte vectors
namespace w${vb} {
<%include file="simd.mako" args="L=L"/>
<%include file="form.mako" args="L=L"/>
<%include file="rows.mako" args="L=L"/>
<%include file="logrho_${cvtype}.mako" args="L=L, layouts={v.layout for v in variants if v.vbytes == vb}"/>
<%include file="stats.mako" args="L=L, layouts={v.layout for v in variants if v.vbytes == vb}"/>
<%include file="drivers.mako" args="L=L, variants=[v for v in variants if v.vbytes == vb]"/>
}  // namespace w${vb}
% endfor
