/* kcompile native inference library: the C API.
 *
 * A library built by `kcompile MODEL --target native -o libmodel.so` holds one model:
 * its kernels (compiled through LLVM for the build machine's CPU), its weights, and
 * this API. It needs only the C library, libm and pthreads at run time.
 *
 *     kc_model *m;
 *     if (kc_model_create(&m) != KC_OK) { fprintf(stderr, "%s\n", kc_last_error()); ... }
 *     const float *inputs[] = {x};          // one pointer per model input
 *     float *outputs[] = {y};               // one pointer per model output
 *     int status = kc_model_run(m, inputs, outputs, batch);
 *     kc_model_destroy(m);
 *
 * Tensors are dense, row-major (C order), batch first as in Keras. Shapes are queried
 * with kc_model_input_shape / kc_model_output_shape, where -1 marks the batch dimension;
 * kc_model_input_size / kc_model_output_size give element counts for a batch size.
 *
 * Threads: one handle may be used from several threads at once. A run uses the
 * handle's workspace and thread pool when they are free, and otherwise a private
 * workspace of its own (and no pool), so concurrent runs never share memory.
 * The pool's size defaults to the CPUs this process may use, or $KC_NUM_THREADS;
 * kc_model_set_num_threads changes it.
 *
 * Errors: every function that can fail returns a kc_status (or -1 / NULL where it
 * returns a count or a name) and records a message that kc_last_error() returns, for
 * the calling thread, until that thread's next failing call. Invalid arguments (null
 * pointers, a batch < 1, a wrong input count, an index out of range) are reported,
 * never dereferenced.
 */
#ifndef KCOMPILE_MODEL_H
#define KCOMPILE_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KC_API __attribute__((visibility("default")))
#else
#define KC_API
#endif

typedef enum kc_status {
    KC_OK = 0,
    KC_ERROR_NULL_POINTER = 1,  /* a required pointer (model, array, tensor buffer) is NULL */
    KC_ERROR_BAD_BATCH = 2,     /* batch < 1, too large, or != 1 for a model without a batch axis */
    KC_ERROR_BAD_COUNT = 3,     /* the number of inputs or outputs passed does not match the model */
    KC_ERROR_BAD_INDEX = 4,     /* an input/output index out of range in a query */
    KC_ERROR_INPUT_VALUE = 5,   /* an input value the model cannot use (an embedding index out of range,
                                   a non-integral or non-finite float for an integer input) */
    KC_ERROR_OUT_OF_MEMORY = 6, /* the workspace for this batch could not be allocated */
    KC_ERROR_BAD_ARGUMENT = 7   /* any other invalid argument (a thread count < 1, unknown flags) */
} kc_status;

typedef enum kc_dtype {
    KC_FLOAT32 = 0,
    KC_INT32 = 1,
    KC_INT64 = 2,
    KC_BOOL = 3 /* one byte per element, 0 or 1 */
} kc_dtype;

/* kc_model_run_ex flags */
#define KC_RUN_NATIVE_TYPES 1 /* buffers hold each tensor's own dtype instead of float */

typedef struct kc_model kc_model;

/* Create a handle (weights are in the library; nothing is read from disk). */
KC_API int kc_model_create(kc_model **model);
/* Free a handle and stop its threads. NULL is ignored. No run may be in progress. */
KC_API void kc_model_destroy(kc_model *model);

/* Run the model on `batch` samples. inputs[i] points to kc_model_input_size(i, batch)
 * floats, outputs[i] to room for kc_model_output_size(i, batch) floats; the arrays hold
 * kc_model_num_inputs() / kc_model_num_outputs() pointers. Integer inputs (token ids) are
 * given as floats holding whole numbers; integer and bool outputs are written as floats. */
KC_API int kc_model_run(kc_model *model, const float *const inputs[], float *const outputs[], int64_t batch);
/* As kc_model_run, with the counts checked against the model and, with
 * KC_RUN_NATIVE_TYPES in flags, buffers in each tensor's own dtype (kc_model_*_dtype). */
KC_API int kc_model_run_ex(kc_model *model, const void *const inputs[], int num_inputs, void *const outputs[],
                           int num_outputs, int64_t batch, int flags);

/* Worker threads for this handle's runs (1 = run on the calling thread only). */
KC_API int kc_model_set_num_threads(kc_model *model, int num_threads);
KC_API int kc_model_num_threads(const kc_model *model); /* -1 on error */

/* Inputs and outputs, in the order the run functions take them. */
KC_API int kc_model_num_inputs(const kc_model *model);  /* -1 on error */
KC_API int kc_model_num_outputs(const kc_model *model); /* -1 on error */
KC_API const char *kc_model_input_name(const kc_model *model, int index);  /* NULL on error */
KC_API const char *kc_model_output_name(const kc_model *model, int index); /* NULL on error */
KC_API int kc_model_input_rank(const kc_model *model, int index);  /* -1 on error */
KC_API int kc_model_output_rank(const kc_model *model, int index); /* -1 on error */
/* Write the rank's dimensions to dims[0 .. max_dims); -1 marks the batch dimension. */
KC_API int kc_model_input_shape(const kc_model *model, int index, int64_t *dims, int max_dims);
KC_API int kc_model_output_shape(const kc_model *model, int index, int64_t *dims, int max_dims);
KC_API int kc_model_input_dtype(const kc_model *model, int index);  /* a kc_dtype, -1 on error */
KC_API int kc_model_output_dtype(const kc_model *model, int index); /* a kc_dtype, -1 on error */
/* Number of elements of the tensor for `batch` samples. */
KC_API int kc_model_input_size(const kc_model *model, int index, int64_t batch, int64_t *count);
KC_API int kc_model_output_size(const kc_model *model, int index, int64_t batch, int64_t *count);
/* 1 when the model has a batch dimension (any batch >= 1 runs), 0 when its shapes are fixed. */
KC_API int kc_model_has_batch(const kc_model *model);
KC_API const char *kc_model_name(const kc_model *model); /* NULL on error */

/* The calling thread's last error message ("" if none), and a name for each status. */
KC_API const char *kc_last_error(void);
KC_API const char *kc_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif /* KCOMPILE_MODEL_H */
