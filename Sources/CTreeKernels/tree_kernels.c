#include "tree_kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

// The extended state the OS saves (XCR0), 0 unless the processor has OSXSAVE (so XGETBV may be
// read) and AVX; and leaf 7's feature bits (EBX), 0 when the processor has no leaf 7.
static unsigned cg_xcr0(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 27)) || !(c & (1u << 28))) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return lo;
}

static unsigned cg_leaf7_ebx(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) ? b : 0;
}

int cg_tree_kernels_avx512(void) {
    // XMM, YMM, opmask, upper ZMM halves and ZMM16-31 state all enabled; AVX512F and AVX512CD.
    const unsigned state = 0xE6u, features = (1u << 16) | (1u << 28);
    return (cg_xcr0() & state) == state && (cg_leaf7_ebx() & features) == features;
}

// Each row's 64-bit set is kept as two 32-bit halves in separate registers, 16 rows per register:
// a split whose left subtree lies in one half changes only that half, so most splits cost one
// compare and one AND per 16 rows. Four chunks of 16 rows a pass, so each split's record is read
// once per 64 rows and eight chains of ANDs are in flight.
#define CG_PASS(ROWS)                                                                              \
    do {                                                                                            \
        const float *x = scratch + c * 16;                                                          \
        __m512i lo[ROWS], hi[ROWS];                                                                 \
        for (int k = 0; k < ROWS; k++) lo[k] = hi[k] = all;                                         \
        const cg_leaf_split *s = splits;                                                            \
        for (size_t j = 0; j < low; j++, s++) {                                                     \
            const __m512 t = _mm512_set1_ps(s->threshold);                                          \
            const __m512i keep = _mm512_set1_epi32((int)(uint32_t)s->keep);                         \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++)                                                          \
                lo[k] = _mm512_mask_and_epi32(lo[k], _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 16 * k), t, _CMP_GE_OQ), lo[k], keep); \
        }                                                                                           \
        for (size_t j = 0; j < high; j++, s++) {                                                    \
            const __m512 t = _mm512_set1_ps(s->threshold);                                          \
            const __m512i keep = _mm512_set1_epi32((int)(uint32_t)(s->keep >> 32));                 \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++)                                                          \
                hi[k] = _mm512_mask_and_epi32(hi[k], _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 16 * k), t, _CMP_GE_OQ), hi[k], keep); \
        }                                                                                           \
        for (size_t j = 0; j < both; j++, s++) {                                                    \
            const __m512 t = _mm512_set1_ps(s->threshold);                                          \
            const __m512i keepLo = _mm512_set1_epi32((int)(uint32_t)s->keep);                       \
            const __m512i keepHi = _mm512_set1_epi32((int)(uint32_t)(s->keep >> 32));               \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++) {                                                        \
                const __mmask16 r = _mm512_cmp_ps_mask(_mm512_loadu_ps(v + 16 * k), t, _CMP_GE_OQ); \
                lo[k] = _mm512_mask_and_epi32(lo[k], r, lo[k], keepLo);                             \
                hi[k] = _mm512_mask_and_epi32(hi[k], r, hi[k], keepHi);                             \
            }                                                                                       \
        }                                                                                           \
        for (int k = 0; k < ROWS; k++) {                                                            \
            _mm512_storeu_si512((void *)(outLow + c * 16 + 16 * k), lo[k]);                         \
            _mm512_storeu_si512((void *)(outHigh + c * 16 + 16 * k), hi[k]);                        \
        }                                                                                           \
    } while (0)

__attribute__((target("avx512f")))
void cg_exit_leaves_avx512(const float *scratch, size_t chunks, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                           uint32_t *outLow, uint32_t *outHigh) {
    const __m512i all = _mm512_set1_epi32(-1);
    size_t c = 0;
    for (; c + 4 <= chunks; c += 4) CG_PASS(4);
    for (; c < chunks; c++) CG_PASS(1);
}

// Each row's exit leaf (the lowest set bit of its two halves) as a vector of 16 leaf numbers.
__attribute__((target("avx512f,avx512cd")))
static inline __m512i cg_exit_leaf16(const uint32_t *low, const uint32_t *high) {
    const __m512i lo = _mm512_loadu_si512((const void *)low), hi = _mm512_loadu_si512((const void *)high);
    const __m512i zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(31);
    // The lowest set bit alone (x & -x), its index 31 - lzcnt; a zero half gives -1 (lzcnt 32).
    const __m512i tzLo = _mm512_sub_epi32(top, _mm512_lzcnt_epi32(_mm512_and_si512(lo, _mm512_sub_epi32(zero, lo))));
    const __m512i tzHi = _mm512_sub_epi32(_mm512_set1_epi32(63), _mm512_lzcnt_epi32(_mm512_and_si512(hi, _mm512_sub_epi32(zero, hi))));
    const __mmask16 inLow = _mm512_test_epi32_mask(lo, lo);
    // Kept within 0-63 whatever the bits say.
    return _mm512_and_si512(_mm512_mask_blend_epi32(inLow, tzHi, tzLo), _mm512_set1_epi32(63));
}

// 16 rows' leaf values (`leaf`: their leaf numbers) added to `a`, the rows of `live` only.
__attribute__((target("avx512f")))
static inline void cg_add16_f64(double *a, __m512i leaf, __mmask16 live, const double *values) {
    const __m512d v0 = _mm512_i32gather_pd(_mm512_castsi512_si256(leaf), values, 8);
    const __m512d v1 = _mm512_i32gather_pd(_mm512_extracti64x4_epi64(leaf, 1), values, 8);
    const __mmask8 m0 = (__mmask8)live, m1 = (__mmask8)(live >> 8);
    _mm512_mask_storeu_pd(a, m0, _mm512_add_pd(_mm512_maskz_loadu_pd(m0, a), v0));
    _mm512_mask_storeu_pd(a + 8, m1, _mm512_add_pd(_mm512_maskz_loadu_pd(m1, a + 8), v1));
}

__attribute__((target("avx512f")))
static inline void cg_add16_f32(float *a, __m512i leaf, __mmask16 live, const float *values) {
    _mm512_mask_storeu_ps(a, live, _mm512_add_ps(_mm512_maskz_loadu_ps(live, a), _mm512_i32gather_ps(leaf, values, 4)));
}

// Scoring's fused kernels on AVX-512 (T: the model's accumulation type; ADD16 adds 16 rows' values).
#define CG_EXIT_LEAVES_ADD_AVX512(NAME, T, ADD16)                                                  \
    __attribute__((target("avx512f,avx512cd")))                                                     \
    void NAME(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both, \
              const T *values, T *acc) {                                                            \
        uint32_t lo[128], hi[128];                                                                  \
        const size_t n = rows < 128 ? rows : 128, chunks = (n + 15) / 16;                           \
        cg_exit_leaves_avx512(scratch, chunks, splits, low, high, both, lo, hi);                    \
        for (size_t c = 0; c < chunks; c++) {                                                       \
            const size_t left = n - c * 16;                                                         \
            const __mmask16 live = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);  \
            ADD16(acc + c * 16, cg_exit_leaf16(lo + c * 16, hi + c * 16), live, values);            \
        }                                                                                           \
    }

CG_EXIT_LEAVES_ADD_AVX512(cg_exit_leaves_add_f64, double, cg_add16_f64)
CG_EXIT_LEAVES_ADD_AVX512(cg_exit_leaves_add_f32, float, cg_add16_f32)

int cg_tree_kernels_avx2(void) {
    // XMM and YMM state enabled; AVX2.
    return (cg_xcr0() & 0x6u) == 0x6u && (cg_leaf7_ebx() & (1u << 5)) != 0;
}

// The AVX2 form of CG_PASS: 8 rows per register, and no mask registers, so a split ANDs each
// lane with `keep` where the row goes right and with all ones elsewhere: lo &= ~(right & ~keep).
// Four chunks of 8 rows a pass (eight registers of sets, the rest for the compares).
#define CG_PASS_AVX2(ROWS)                                                                         \
    do {                                                                                            \
        const float *x = scratch + c * 8;                                                           \
        __m256i lo[ROWS], hi[ROWS];                                                                 \
        for (int k = 0; k < ROWS; k++) lo[k] = hi[k] = all;                                         \
        const cg_leaf_split *s = splits;                                                            \
        for (size_t j = 0; j < low; j++, s++) {                                                     \
            const __m256 t = _mm256_set1_ps(s->threshold);                                          \
            const __m256i drop = _mm256_set1_epi32((int)~(uint32_t)s->keep);                        \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++) {                                                        \
                const __m256i r = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(v + 8 * k), t, _CMP_GE_OQ)); \
                lo[k] = _mm256_andnot_si256(_mm256_and_si256(r, drop), lo[k]);                      \
            }                                                                                       \
        }                                                                                           \
        for (size_t j = 0; j < high; j++, s++) {                                                    \
            const __m256 t = _mm256_set1_ps(s->threshold);                                          \
            const __m256i drop = _mm256_set1_epi32((int)~(uint32_t)(s->keep >> 32));                \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++) {                                                        \
                const __m256i r = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(v + 8 * k), t, _CMP_GE_OQ)); \
                hi[k] = _mm256_andnot_si256(_mm256_and_si256(r, drop), hi[k]);                      \
            }                                                                                       \
        }                                                                                           \
        for (size_t j = 0; j < both; j++, s++) {                                                    \
            const __m256 t = _mm256_set1_ps(s->threshold);                                          \
            const __m256i dropLo = _mm256_set1_epi32((int)~(uint32_t)s->keep);                      \
            const __m256i dropHi = _mm256_set1_epi32((int)~(uint32_t)(s->keep >> 32));              \
            const float *v = x + s->offset;                                                         \
            for (int k = 0; k < ROWS; k++) {                                                        \
                const __m256i r = _mm256_castps_si256(_mm256_cmp_ps(_mm256_loadu_ps(v + 8 * k), t, _CMP_GE_OQ)); \
                lo[k] = _mm256_andnot_si256(_mm256_and_si256(r, dropLo), lo[k]);                    \
                hi[k] = _mm256_andnot_si256(_mm256_and_si256(r, dropHi), hi[k]);                    \
            }                                                                                       \
        }                                                                                           \
        for (int k = 0; k < ROWS; k++) {                                                            \
            _mm256_storeu_si256((__m256i *)(void *)(outLow + c * 8 + 8 * k), lo[k]);                \
            _mm256_storeu_si256((__m256i *)(void *)(outHigh + c * 8 + 8 * k), hi[k]);               \
        }                                                                                           \
    } while (0)

__attribute__((target("avx2")))
void cg_exit_leaves_avx2(const float *scratch, size_t chunks, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                         uint32_t *outLow, uint32_t *outHigh) {
    const __m256i all = _mm256_set1_epi32(-1);
    size_t c = 0;
    for (; c + 4 <= chunks; c += 4) CG_PASS_AVX2(4);
    for (; c < chunks; c++) CG_PASS_AVX2(1);
}

// A row's exit leaf: the lowest set bit of its two halves (kept within 0-63 whatever the bits say).
static inline unsigned cg_exit_leaf(uint32_t low, uint32_t high) {
    const uint64_t set = (uint64_t)low | (uint64_t)high << 32;
    return set == 0 ? 0u : (unsigned)__builtin_ctzll(set) & 63u;
}

// Scoring's fused kernels on AVX2: each row's leaf value added one row at a time (T: the model's
// accumulation type).
#define CG_EXIT_LEAVES_ADD_AVX2(NAME, T)                                                           \
    __attribute__((target("avx2")))                                                                 \
    void NAME(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both, \
              const T *values, T *acc) {                                                            \
        uint32_t lo[128], hi[128];                                                                  \
        const size_t n = rows < 128 ? rows : 128;                                                   \
        cg_exit_leaves_avx2(scratch, (n + 7) / 8, splits, low, high, both, lo, hi);                 \
        for (size_t r = 0; r < n; r++) acc[r] += values[cg_exit_leaf(lo[r], hi[r])];                \
    }

CG_EXIT_LEAVES_ADD_AVX2(cg_exit_leaves_add_f64_avx2, double)
CG_EXIT_LEAVES_ADD_AVX2(cg_exit_leaves_add_f32_avx2, float)

#else

// Elsewhere no processor runs the kernels (both checks answer 0, so Swift never calls the others).
int cg_tree_kernels_avx512(void) { return 0; }

int cg_tree_kernels_avx2(void) { return 0; }

#define CG_NO_EXIT_LEAVES(NAME)                                                                    \
    void NAME(const float *scratch, size_t chunks, const cg_leaf_split *splits, size_t low, size_t high, size_t both, \
              uint32_t *outLow, uint32_t *outHigh) {                                                \
        (void)scratch; (void)chunks; (void)splits; (void)low; (void)high; (void)both; (void)outLow; (void)outHigh; \
    }
#define CG_NO_EXIT_LEAVES_ADD(NAME, T)                                                             \
    void NAME(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both, \
              const T *values, T *acc) {                                                            \
        (void)scratch; (void)rows; (void)splits; (void)low; (void)high; (void)both; (void)values; (void)acc; \
    }

CG_NO_EXIT_LEAVES(cg_exit_leaves_avx512)
CG_NO_EXIT_LEAVES(cg_exit_leaves_avx2)
CG_NO_EXIT_LEAVES_ADD(cg_exit_leaves_add_f64, double)
CG_NO_EXIT_LEAVES_ADD(cg_exit_leaves_add_f32, float)
CG_NO_EXIT_LEAVES_ADD(cg_exit_leaves_add_f64_avx2, double)
CG_NO_EXIT_LEAVES_ADD(cg_exit_leaves_add_f32_avx2, float)

#endif
