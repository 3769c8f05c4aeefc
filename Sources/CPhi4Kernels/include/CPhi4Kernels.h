// SIMD microkernels for libphi4, chosen at run time by CPU features.
// Only kernels live here; everything else is Swift. Symbols use the `p4k_` prefix so that the
// shared library's export list (`phi4_*`) never exposes them.
#ifndef CPHI4_KERNELS_H
#define CPHI4_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CPU feature bits reported by `p4k_cpu_features`.
enum {
    P4K_CPU_AVX2 = 1 << 0,
    P4K_CPU_FMA = 1 << 1,
    P4K_CPU_F16C = 1 << 2,
    P4K_CPU_AVX512F = 1 << 3,
    P4K_CPU_AVX512BW = 1 << 4,
    P4K_CPU_AVX512VNNI = 1 << 5,
    P4K_CPU_AVXVNNI = 1 << 6,
    P4K_CPU_NEON = 1 << 7,
    P4K_CPU_AVX512VL = 1 << 8,
    P4K_CPU_DOTPROD = 1 << 9,  ///< aarch64's dot-product extension (sdot)
};

/// The CPU's model name (cpuid brand string; "unknown" where there is none), at most `n` − 1
/// characters and a NUL written to `buf`.
void p4k_cpu_model(char *buf, size_t n);

/// The vector features the kernels can use, as words ("avx2 fma f16c avx512f …"), into `buf`.
void p4k_cpu_flags(char *buf, size_t n);

/// The features of the CPU this process runs on (bit set of P4K_CPU_*), read once from cpuid.
uint32_t p4k_cpu_features(void);

/// Instruction-set families of the quantized kernels (PHI4_ISA=scalar|avx2|avx512|vnni|neon|dotprod
/// limits the kernels to that family and the ones below it). AVX-512 without VNNI has no kernels of
/// its own (its integer multiplies are AVX2's at twice the width, which measured no faster); "vnni"
/// is AVX-512 VNNI on 256-bit vectors (AVX512-VL). "neon" and "dotprod" are aarch64's (plain
/// Advanced SIMD, and with the dot-product extension); a CPU has either the x86 or the ARM ones.
enum { P4K_ISA_SCALAR = 0, P4K_ISA_AVX2 = 1, P4K_ISA_AVX512 = 2, P4K_ISA_VNNI = 3, P4K_ISA_NEON = 4, P4K_ISA_DOTPROD = 5,
       P4K_ISA_TOP = P4K_ISA_DOTPROD };

/// Status codes of the matrix kernels.
enum { P4K_OK = 0, P4K_ENOMEM = -1, P4K_EFORMAT = -2 };

/// Quantized weight formats (GGUF's type numbers).
enum {
    P4K_Q4_0 = 2, P4K_Q4_1 = 3, P4K_Q5_0 = 6, P4K_Q5_1 = 7, P4K_Q8_0 = 8, P4K_Q2_K = 10, P4K_Q3_K = 11, P4K_Q4_K = 12,
    P4K_Q5_K = 13, P4K_Q6_K = 14, P4K_IQ2_XXS = 16, P4K_IQ2_XS = 17, P4K_IQ3_XXS = 18, P4K_IQ1_S = 19, P4K_IQ4_NL = 20,
    P4K_IQ3_S = 21, P4K_IQ2_S = 22, P4K_IQ4_XS = 23, P4K_IQ1_M = 29
};

/// One weight format's facts, written once (the table in formats.c): GGML's type id and name,
/// values and bytes per block (the p4k_block_* struct's size), whether the matrix kernels run it in
/// place from a file mapping (then its type id is its P4K_* kernel format), and its reference
/// quantizer and dequantizer over `n` values, a multiple of block_values (NULL where libphi4 has
/// none). Swift's `GGMLType` and `WeightFormat` read their sizes and names from here.
typedef struct {
    uint32_t ggml_type;
    const char *name;
    uint32_t block_values;
    uint32_t block_bytes;
    int in_place;
    void (*quantize)(const float *x, void *out, size_t n);
    void (*dequantize)(const void *in, float *x, size_t n);
} p4k_format_info;

/// The facts of a GGML type, or NULL for a type libphi4 does not read.
const p4k_format_info *p4k_format(uint32_t ggml_type);

/// Entry `i` of the table (in GGML type order), or NULL past its end.
const p4k_format_info *p4k_format_at(size_t i);

/// Bytes of one super-block of 256 values of a K-quant format (0 for other formats).
size_t p4k_kquant_block_bytes(int format);

/// Quantizes `n` floats (a multiple of 256) to Q2_K … Q6_K super-blocks with llama.cpp's
/// reference rounding (quantize_row_q*_K_ref, no importance matrix).
void p4k_quantize_kquant(int format, const float *x, void *out, size_t n);

/// Quantizes `rows` rows of `cols` floats to `format` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K … Q6_K,
/// IQ4_NL, IQ4_XS and the lattice types IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M) as llama.cpp's quantizer does: with `imatrix` (`cols` importance values, the
/// mean squared activation of each input column; NULL for none) its weighted searches, without it
/// the reference rounding. Returns 0, or P4K_EFORMAT for another format or a `cols` that is not
/// whole blocks.
int p4k_quantize_rows(int format, const float *x, void *out, size_t rows, size_t cols, const float *imatrix);

/// One row of `n` floats (a multiple of 256) to super-blocks of a lattice IQ type (IQ3_XXS, IQ3_S,
/// IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M) as llama.cpp's quantizer writes them (`imatrix`: `n`
/// importance values, or NULL: IQ2_XXS, IQ2_XS and IQ1_S, which llama.cpp refuses to write
/// without one, then weigh every value alike). The first call per grid builds its neighbour
/// lists (up to ~1 s for IQ1's 2048 entries).
void p4k_quantize_iq_row(int format, const float *x, void *out, size_t n, const float *imatrix);

/// Whether this CPU can run an ISA path.
int p4k_isa_available(int isa);

/// The highest ISA family available, or PHI4_ISA's choice when it is available (the attention and
/// activation kernels use it; the matrix kernels are chosen per format and batch size, below).
int p4k_isa_best(void);

/// "scalar", "avx2", "avx512", "vnni", "neon" or "dotprod".
const char *p4k_isa_name(int isa);

/// IEEE half ↔ float (round to nearest even).
float p4k_fp16_to_f32(uint16_t h);
uint16_t p4k_f32_to_fp16(float f);

/// Quantizes `n` floats (a multiple of 32) to GGUF blocks, with llama.cpp's reference rounding.
void p4k_quantize_q8_0(const float *x, void *out, size_t n);
void p4k_quantize_q4_0(const float *x, void *out, size_t n);
void p4k_quantize_q5_0(const float *x, void *out, size_t n);
void p4k_quantize_q5_1(const float *x, void *out, size_t n);
void p4k_quantize_q4_1(const float *x, void *out, size_t n);

/// Dequantizes `n` values of GGUF blocks (Q6_K: n a multiple of 256).
void p4k_dequantize_q8_0(const void *in, float *x, size_t n);
void p4k_dequantize_q4_0(const void *in, float *x, size_t n);
void p4k_dequantize_q6_k(const void *in, float *y, size_t n);
/// The other GGUF block types llama.cpp's K-quant mixes use: Q4_1, Q5_0, Q5_1 (blocks of 32) and
/// Q4_K, Q5_K (super-blocks of 256 with 6-bit sub-block scales and mins). Bit for bit the values
/// of the `gguf` package's reference dequantizers.
void p4k_dequantize_q4_1(const void *in, float *y, size_t n);
void p4k_dequantize_q5_0(const void *in, float *y, size_t n);
void p4k_dequantize_q5_1(const void *in, float *y, size_t n);
void p4k_dequantize_q4_k(const void *in, float *y, size_t n);
void p4k_dequantize_q5_k(const void *in, float *y, size_t n);
/// Q2_K and Q3_K (super-blocks of 256 in 16 groups of 16), IQ4_NL (blocks of 32) and IQ4_XS
/// (super-blocks of 256): the non-linear 4-bit types index GGML's 16-value table. Bit for bit the
/// `gguf` package's values.
void p4k_dequantize_q2_k(const void *in, float *y, size_t n);
void p4k_dequantize_q3_k(const void *in, float *y, size_t n);
void p4k_dequantize_iq4_nl(const void *in, float *y, size_t n);
void p4k_dequantize_iq4_xs(const void *in, float *y, size_t n);
/// The lattice IQ types (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M; super-blocks of 256
/// whose values are entries of fixed codebooks with sign bits): `format` is the type's P4K_ code.
/// Bit for bit the `gguf` package's values.
void p4k_dequantize_iq(int format, const void *in, float *y, size_t n);

/// Quantizes an activation row of `n` floats (a multiple of 32) to int8 blocks of 32 with an f32
/// scale per block and the integer sum of each block.
void p4k_quantize_activation(const float *x, size_t n, int8_t *qs, float *d, int32_t *sums);

/// Bytes of one row of `cols` values in a matrix format (K-quants: cols a multiple of 256); 0 for
/// a format the matrix kernels do not take.
size_t p4k_row_bytes(int format, size_t cols);

/// Whether the matrix kernels take this format (Q8_0, Q4_0, Q4_K, Q5_K, Q6_K).
int p4k_format_supported(int format);

/// The exact int32 dot product of each Q8_0 / Q4_0 block of one weight row with the activation
/// (the scalar definition; a test hook). P4K_EFORMAT for other formats.
int p4k_block_sums(int format, const void *w_row, const int8_t *aq, const int32_t *asum, size_t nb, int32_t *out);

/// Quantized weights × `t` activation rows (quantized by p4k_quantize_activation, row stride
/// `cols`): out[i·ldo + r] (+)= Σ_b term(row r, activation i, block b), for Q8_0, Q4_0, Q4_K,
/// Q5_K and Q6_K (the terms are defined in kernels_scalar.c). Every kernel gives the same bits, so
/// a batch computes each token exactly as decoding it alone would. `isa` < 0: the kernel chosen
/// for this format and batch size (p4k_kernels_calibrate); otherwise that ISA family's preferred
/// kernel, or the next family down where it has none. Returns P4K_OK, P4K_ENOMEM (scratch memory
/// could not be allocated; nothing written) or P4K_EFORMAT (an unknown format).
int p4k_gemm(int format, int isa, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
             const int32_t *asum, float *out, size_t ldo, int accumulate);

/// p4k_gemm for one activation row.
int p4k_matvec(int format, int isa, const void *w, size_t cols, size_t rows, const int8_t *aq, const float *ad,
               const int32_t *asum, float *out, int accumulate);

/// Batch-size classes the kernels are chosen for: one token, 2–16 tokens, 17 and more.
enum { P4K_BATCH_ONE = 0, P4K_BATCH_SMALL = 1, P4K_BATCH_LARGE = 2 };

/// Times every kernel that can serve each batch class of the given formats on this CPU and keeps
/// the fastest for the rest of the process (about 5–30 ms per format, once; formats already
/// calibrated are skipped; PHI4_CALIBRATE=0 skips it and keeps the fixed preference). Call it when
/// a model is loaded, off the token-by-token path. Returns 0, or P4K_ENOMEM.
int p4k_kernels_calibrate(const int *formats, size_t count);

/// Whether p4k_kernels_calibrate has run for this format.
int p4k_kernels_calibrated(int format);

/// Milliseconds spent in p4k_kernels_calibrate in this process.
double p4k_kernels_calibration_ms(void);

/// The name of the kernel used for a format and batch class (e.g. "avx2-rows", "vnni-panels").
const char *p4k_kernel_choice(int format, int batch_class);

/// The kernels compiled in (every ISA, available here or not), for tests and reports: how many,
/// and entry `index`'s format, ISA, batch classes (bit set of 1 << P4K_BATCH_*) and name.
int p4k_kernel_count(void);
int p4k_kernel_info(int index, int *format, int *isa, unsigned *classes, const char **name);

/// Runs kernel `index` (p4k_gemm's arguments; the format is the kernel's). P4K_EFORMAT when the
/// index is out of range or this CPU cannot run it.
int p4k_kernel_run(int index, const void *w, size_t cols, size_t rows, size_t t, const int8_t *aq, const float *ad,
                   const int32_t *asum, float *out, size_t ldo, int accumulate);

/// Dequantizes `rows` rows of a quantized matrix (any format above) to f32 (row-major, `cols` per
/// row). P4K_EFORMAT for an unknown format.
int p4k_dequantize_rows(int format, const void *w, size_t cols, size_t rows, float *out);

/// Widens `n` bfloat16 values to float32 (AVX-512 when available).
void p4k_bf16_to_f32(const uint16_t *src, float *dst, size_t n);

/// Narrows `n` floats to IEEE half, rounding to nearest even (F16C when available).
void p4k_f32_to_f16(const float *src, uint16_t *dst, size_t n);

/// Widens `n` IEEE half values to float32 (F16C when available).
void p4k_f16_to_f32(const uint16_t *src, float *dst, size_t n);

/// Element types of the keys and values p4k_attend_tile reads. A Q8_0 row of `ld` elements (a
/// multiple of 32) is ld/32 blocks of 34 bytes (an f16 scale, 32 int8 values).
enum { P4K_KV_F32 = 0, P4K_KV_F16 = 1, P4K_KV_Q8_0 = 2 };

/// One key tile's step of attention with an online softmax, for `nq` queries (rows `q_stride`
/// floats apart) that all see the same `count` keys and values (rows of `ld` elements, f32, f16 or
/// Q8_0 by `kv_type`, read in place), head dimension `hd` (Q8_0: ld and hd multiples of 32). For query r: scores s_j = scale·q_r·k_j
/// (written to `scores + r·count`, then replaced by exp(s_j − m)), the running maximum
/// `run_max[r]` becomes m, `run_sum[r]` is rescaled and extended, and the unnormalized output
/// `acc + r·hd` is rescaled and gets Σ_j exp(s_j − m)·v_j. A query's result does not depend on
/// the other queries of the call. `isa` −1 is the best path (PHI4_ISA may force one);
/// P4K_ISA_SCALAR forces the plain loops.
void p4k_attend_tile(int isa, int kv_type, const float *q, size_t q_stride, size_t nq, const void *keys,
                     const void *values, size_t ld, size_t count, size_t hd, float scale, float *scores,
                     float *run_max, float *run_sum, float *acc);

/// p4k_attend_tile's softmax step alone, for one query whose `count` scores are already in
/// `scores` (the prefill path computes them with BLAS): the scores become exp(s_j − m) for the new
/// running maximum m, `*run_sum` is rescaled and extended, `acc` (hd floats) is rescaled when m
/// grew. Vectorized under the same conditions as p4k_attend_tile.
void p4k_softmax_step(int isa, float *scores, size_t count, float *run_max, float *run_sum, float *acc, size_t hd);

/// Whether p4k_attend_tile takes its vector path for this ISA and head dimension (AVX2 with FMA
/// and F16C, hd a multiple of 16).
int p4k_attend_vectorized(int isa, size_t hd);

/// Allocates `bytes` of zeroed, page-aligned memory, asking for transparent huge pages; NULL on failure.
void *p4k_alloc_large(size_t bytes);

/// Frees memory from p4k_alloc_large (same size).
void p4k_free_large(void *p, size_t bytes);

/// Tells the kernel a mapped range will be read sequentially soon (read-ahead).
void p4k_advise_sequential(const void *p, size_t bytes);

/// Tells the kernel a read-only mapped range is no longer needed (drops it from the resident set).
void p4k_advise_done(const void *p, size_t bytes);

/// The number of CPUs in this process's affinity mask (0 when unknown).
int p4k_affinity_cpu_count(void);

/// Atomic (sequentially consistent) load of a counter shared between threads.
long p4k_atomic_load(const long *p);
/// Atomically adds `delta` to `*p` (sequentially consistent) and returns the new value.
long p4k_atomic_add(long *p, long delta);
/// Spins (with a pause hint) while `*p == value`, at most `spins` times; returns 1 when the
/// value changed, 0 when it did not within the limit.
int p4k_spin_while_equal(const long *p, long value, long spins);
/// Spins (with a pause hint) until `*p == 0`, at most `spins` times; returns 1 when it became 0.
int p4k_spin_until_zero(const long *p, long spins);

/// A flag that any thread may set and the generating thread polls (cancellation).
typedef struct { volatile int32_t value; } p4k_flag;

/// Sets the flag to `v` (sequentially consistent).
static inline void p4k_flag_store(p4k_flag *f, int32_t v) { __atomic_store_n(&f->value, v, __ATOMIC_SEQ_CST); }

/// Sets the flag to `v` and returns its previous value (sequentially consistent).
static inline int32_t p4k_flag_exchange(p4k_flag *f, int32_t v) { return __atomic_exchange_n(&f->value, v, __ATOMIC_SEQ_CST); }

/// Reads the flag (sequentially consistent).
static inline int32_t p4k_flag_load(p4k_flag *f) { return __atomic_load_n(&f->value, __ATOMIC_SEQ_CST); }

#ifdef __cplusplus
}
#endif
#endif
