/// The largest model ChurnGrid loads. Every size a model file declares (`num_feature`,
/// `max_feature_idx`, `num_nodes`, `num_leaves`…) is checked against these, and against what the
/// file actually holds, before anything is allocated for it, so a hostile or corrupt file is
/// refused with a `ModelError` instead of exhausting memory or trapping.
public enum ModelLimits {
    /// Input features a model may declare (`num_feature`, `max_feature_idx + 1`). Far above any
    /// churn model; a model only ever compiles with at most 8,192 feature views in use.
    public static let maximumFeatures = 1_000_000

    /// Leaves of one LightGBM tree: LightGBM's own limit for `num_leaves`.
    public static let maximumLeaves = 131_072

    /// Nodes in one model, leaves included (the compiled layout and the explainer index nodes with
    /// 32-bit integers).
    public static let maximumNodes = 1 << 30

    /// Depth of one tree (a single leaf has depth 0). Exact TreeSHAP recurses once per level and
    /// keeps (depth + 2)(depth + 3)/2 path elements per row; 1,024 levels is ~17 MB of path and far
    /// deeper than any boosted tree (XGBoost's default is 6, LightGBM's leaf-wise trees of 131,072
    /// leaves are rarely deeper than a few dozen levels).
    public static let maximumTreeDepth = 1024

    /// Category codes a categorical split may name: `0 ..< 2^24`. XGBoost's own bound (it reads
    /// larger codes as no category); a LightGBM bitset longer than 2^24 bits is refused too.
    public static let maximumCategories = 1 << 24

    /// 32-bit words of category bitsets in one model, all splits together (64 MiB). A categorical
    /// split costs a word per 32 categories up to its largest, however few it lists, so this bounds
    /// what a small file naming a few huge categories could make the loader and compiler allocate.
    public static let maximumCategoryWords = 1 << 24
}
