// Vector kernels of the tree engine (TreeModel's CompiledForest), chosen at run time by what the
// processor can do. Each entry point has a portable Swift counterpart that gives the same
// results; these only make them faster.
#ifndef CHURNGRID_TREE_KERNELS_H
#define CHURNGRID_TREE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// One split of a tree with at most 64 leaves, for the leaf-bitvector walk (QuickScorer,
/// Lucchese et al. 2015): a row that goes right at this split cannot end in any leaf of its left
/// subtree, so its tree's 64-bit set of still-possible leaves is ANDed with `keep`.
typedef struct {
    /// Go right iff the view's value >= threshold.
    float threshold;
    /// Where the split's view starts in the block's scratch (view index x block rows), in floats.
    uint32_t offset;
    /// The leaves still possible after going right: every bit but the left subtree's leaves.
    uint64_t keep;
} cg_leaf_split;

/// 1 when this processor and operating system run the `cg_exit_leaves_*` kernels (AVX-512 F and
/// CD, with the opmask and ZMM state enabled by the OS), else 0.
int cg_tree_kernels_avx512(void);

/// For each of `chunks` x 16 rows of a block's scratch, the set of leaves that no split the row goes
/// right at (on its path or not) eliminated, as two 32-bit halves (bit k of `outLow[r] | outHigh[r] << 32` = leaf k in
/// left-to-right order); the lowest set bit is the row's exit leaf. `splits` holds first the
/// `low` splits whose left subtree lies in leaves 0-31, then the `high` ones in leaves 32-63,
/// then the `both` others. Every split is evaluated for 16 rows per instruction.
/// Call only when `cg_tree_kernels_avx512()` returned 1. `scratch + split.offset + chunks * 16`
/// must stay inside the scratch for every split; `outLow` and `outHigh` hold `chunks * 16` words.
void cg_exit_leaves_avx512(const float *scratch, size_t chunks, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                           uint32_t *outLow, uint32_t *outHigh);

/// Scoring's fused form of `cg_exit_leaves_avx512` for a block of `rows` (at most 128, and at
/// most the scratch's block rows; rows beyond 128 are not added): `acc[r] += values[exit leaf of row r]`, `values` being
/// the tree's 64 leaf values by leaf number (in the model's accumulation type). Each row's
/// addition is the scalar one, so results are the same to the bit.
void cg_exit_leaves_add_f64(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                            const double *values, double *acc);
void cg_exit_leaves_add_f32(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                            const float *values, float *acc);

/// 1 when this processor and operating system run the `*_avx2` kernels (AVX2, with the YMM state
/// enabled by the OS), else 0.
int cg_tree_kernels_avx2(void);

/// `cg_exit_leaves_avx512` on AVX2: `chunks` x 8 rows, 8 rows per compare. Call only when
/// `cg_tree_kernels_avx2()` returned 1; `scratch + split.offset + chunks * 8` must stay inside the
/// scratch for every split; `outLow` and `outHigh` hold `chunks * 8` words.
void cg_exit_leaves_avx2(const float *scratch, size_t chunks, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                         uint32_t *outLow, uint32_t *outHigh);

/// `cg_exit_leaves_add_f64` / `_f32` on AVX2 (the same contract: at most 128 rows, each row's
/// addition the scalar one).
void cg_exit_leaves_add_f64_avx2(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                                 const double *values, double *acc);
void cg_exit_leaves_add_f32_avx2(const float *scratch, size_t rows, const cg_leaf_split *splits, size_t low, size_t high, size_t both,
                                 const float *values, float *acc);

#ifdef __cplusplus
}
#endif

#endif
