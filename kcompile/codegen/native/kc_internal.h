/* Shared between runtime.c and the generated model_data.c (not installed). */
#ifndef KCOMPILE_INTERNAL_H
#define KCOMPILE_INTERNAL_H

#include <stdint.h>

#define KC_MAX_RANK 8

typedef struct kc_tensor_info {
    const char *name;
    int rank;
    int64_t dims[KC_MAX_RANK]; /* -1 at the dynamic axis */
    int dtype;                 /* kc_dtype */
    int dynamic_axis;          /* -1 when static */
    int64_t factor;            /* batch units the dynamic axis holds per sample */
    int base;                  /* 0: arena, 1: weights */
    int64_t per_sample;        /* byte offset = per_sample * batch + offset */
    int64_t offset;
    int64_t static_count;      /* elements per unit of the dynamic axis (all, when static) */
} kc_tensor_info;

typedef struct kc_model_info {
    const char *name;
    int num_inputs, num_outputs;
    const kc_tensor_info *inputs, *outputs;
    int64_t arena_per_sample, arena_static;
    int has_batch;
    int num_steps;
    const char *const *step_labels;
    int64_t microbatch; /* run larger batches in slices of this many samples; 0: never slice */
} kc_model_info;

extern const kc_model_info kcrt_model;
extern const unsigned char kcrt_weights[];

/* The generated code (kernels.o). */
typedef void (*kcrt_task_fn)(void *env, int64_t lo, int64_t hi);
void kcgen_forward(void *arena, const void *weights, int64_t batch, void *exec);

/* The runtime services the generated code calls. */
void kcrt_parallel_for(void *exec, kcrt_task_fn fn, void *env, int64_t ntasks, int64_t cost);
void kcrt_report_error(void *exec, int32_t status);

#endif
