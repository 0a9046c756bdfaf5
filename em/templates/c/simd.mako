## The SIMD layer at one width: the only template that knows how wide a vector is.  Vector
## types, loads and stores, horizontal reductions, exp and log.  L: em.specializer.layout.Layout.
<%page args="L"/>\
<%
    VW = L.lanes
    IT = "int32_t" if L.T == "float" else "int64_t"
%>\
enum { VW = ${VW}, DP = ${L.DP}, ZW = ${L.ZW} };   // lanes; padded features; tile row width
typedef T vT __attribute__((vector_size(${L.vector_bytes})));
typedef ${IT} iT;                                                  // an integer as wide as T
typedef iT vI __attribute__((vector_size(${L.vector_bytes})));     // same-width integers
static inline vT vload(const T* p) { vT v; memcpy(&v, p, sizeof v); return v; }
static inline void vstore(T* p, vT v) { memcpy(p, &v, sizeof v); }
static inline vT vzero() { return (vT){}; }
static inline vT vmaxv(vT a, vT b) { return a > b ? a : b; }
#ifdef __clang__
#define EM_SHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#define EM_SHUFFLE2(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define EM_FSHUFFLE(v, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define EM_SHUFFLE(v, ...) __builtin_shuffle(v, (vI){__VA_ARGS__})
#define EM_SHUFFLE2(a, b, ...) __builtin_shuffle(a, b, (vI){__VA_ARGS__})
#define EM_FSHUFFLE(v, ...) __builtin_shuffle(v, (vIF){__VA_ARGS__})
#endif
// horizontal sum / max as a tree of shuffles (a scalar loop over lanes is a dependency chain)
<%def name="tree(ret, name, V, lanes, shuffle, keep)">\
static inline ${ret} ${name}(${V} v) {
% for h in [lanes >> i for i in range(1, lanes.bit_length())]:
    { const ${V} u = ${shuffle}(v, ${", ".join(str((l + h) % lanes) for l in range(lanes))}); v = ${keep}; }
% endfor
    return v[0];
}
</%def>\
${tree("T", "vsum", "vT", VW, "EM_SHUFFLE", "v + u")}\
${tree("T", "vmax", "vT", VW, "EM_SHUFFLE", "v > u ? v : u")}\
${tree("iT", "vmin_int", "vI", VW, "EM_SHUFFLE", "u < v ? u : v")}\
// add the lanes of v to the VW doubles at o (where sums in T meet their double accumulators)
static inline void vadd_to(double* o, vT v) {
    for (int l = 0; l < VW; ++l) o[l] += (double)v[l];
}

% if L.T == "float":
// exp of arguments <= 0: Cephes-style polynomial, relative error ~1e-7; below -87 exactly 0,
// so results stay normal numbers
static inline vT em_vexp(vT x) {
    const vT lo = vzero() - 87.0f;
    x = x < lo ? lo : x;
    const vT n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    vT r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    vT p = 1.9875691500E-4f * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = p * r * r + r + 1.0f;
    const vI e = (__builtin_convertvector(n, vI) + 127) << 23;
    const vT y = p * (vT)e;
    return x <= lo ? vzero() : y;
}

// log of positive normal numbers: Cephes logf, relative error ~1e-7
static inline vT em_vlog(vT x) {
    vI bits; memcpy(&bits, &x, sizeof bits);
    vI e = (bits >> 23) - 126;
    bits = (bits & 0x007fffff) | 0x3f000000;             // mantissa in [0.5, 1)
    vT m; memcpy(&m, &bits, sizeof m);
    const vI small = m < 0.707106781186547524f;          // all-ones where true
    e += small;                                          // e - 1 there
    m = m + (vT)(small & (vI)bits) - 1.0f;               // m < sqrt(1/2): 2m - 1, else m - 1
    const vT z = m * m;
    vT y = 7.0376836292E-2f * m - 1.1514610310E-1f;
    y = y * m + 1.1676998740E-1f;
    y = y * m - 1.2420140846E-1f;
    y = y * m + 1.4249322787E-1f;
    y = y * m - 1.6668057665E-1f;
    y = y * m + 2.0000714765E-1f;
    y = y * m - 2.4999993993E-1f;
    y = y * m + 3.3333331174E-1f;
    y = y * m * z;
    const vT fe = __builtin_convertvector(e, vT);
    y += fe * -2.12194440e-4f;
    y -= 0.5f * z;
    return m + y + fe * 0.693359375f;
}
% else:
// exp of arguments <= 0: Cody-Waite reduction, degree-12 Taylor, relative error ~2e-16;
// below -700 exactly 0
static inline vT em_vexp(vT x) {
    const vT lo = vzero() - 700.0;
    x = x < lo ? lo : x;
    const vT n = (x * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0;
    const vT r = (x - n * 0.693145751953125) - n * 1.42860682030941723212e-6;
    vT p = vzero() + 1.0 / 479001600.0;
% for i in range(11, -1, -1):
    p = p * r + ${"%.17g" % (1.0 / __import__("math").factorial(i))};
% endfor
    const vI e = (__builtin_convertvector(n, vI) + 1023) << 52;
    const vT y = p * (vT)e;
    return x <= lo ? vzero() : y;
}

static inline vT em_vlog(vT x) {                       // double: libm, lane by lane
    for (int l = 0; l < VW; ++l) x[l] = log(x[l]);
    return x;
}
% endif

% if L.T == "double":

// float vectors as wide as vT (kdot scores float64 data in float first): FW lanes
enum { FW = ${2 * VW} };
typedef float vF __attribute__((vector_size(${L.vector_bytes})));
typedef int32_t vIF __attribute__((vector_size(${L.vector_bytes})));
typedef float vFh __attribute__((vector_size(${L.vector_bytes // 2})));   // VW floats
static inline vF fload(const float* p) { vF v; memcpy(&v, p, sizeof v); return v; }
static inline void fstore(float* p, vF v) { memcpy(p, &v, sizeof v); }
${tree("float", "fmax_h", "vF", 2 * VW, "EM_FSHUFFLE", "v > u ? v : u")}\
${tree("int32_t", "fmin_int", "vIF", 2 * VW, "EM_FSHUFFLE", "u < v ? u : v")}\
% endif
