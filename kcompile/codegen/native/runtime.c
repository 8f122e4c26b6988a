/* kcompile native runtime: the C API of kc_model.h over the generated kernels.
 *
 * A run: validate the arguments, take a workspace (the handle's, when no other run
 * holds it, else a private one), copy the inputs into the arena, call kcgen_forward,
 * copy the outputs out. The generated code hands each step to kcrt_parallel_for,
 * which runs its tasks on the handle's thread pool (workers spin briefly between
 * steps, then sleep) or inline when the step is small or the run has no pool.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kc_internal.h"
#include "kc_model.h"

#define KC_PARALLEL_MIN_COST 60000 /* ~flops: smaller steps run on the calling thread */
#define KC_MAX_THREADS 256

/* -- errors ------------------------------------------------------------------------------- */
static __thread char kc_error_text[512];

static int fail(int status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(kc_error_text, sizeof kc_error_text, fmt, args);
    va_end(args);
    return status;
}

KC_API const char *kc_last_error(void) { return kc_error_text; }

KC_API const char *kc_status_string(int status) {
    switch (status) {
    case KC_OK: return "KC_OK";
    case KC_ERROR_NULL_POINTER: return "KC_ERROR_NULL_POINTER";
    case KC_ERROR_BAD_BATCH: return "KC_ERROR_BAD_BATCH";
    case KC_ERROR_BAD_COUNT: return "KC_ERROR_BAD_COUNT";
    case KC_ERROR_BAD_INDEX: return "KC_ERROR_BAD_INDEX";
    case KC_ERROR_INPUT_VALUE: return "KC_ERROR_INPUT_VALUE";
    case KC_ERROR_OUT_OF_MEMORY: return "KC_ERROR_OUT_OF_MEMORY";
    case KC_ERROR_BAD_ARGUMENT: return "KC_ERROR_BAD_ARGUMENT";
    default: return "unknown status";
    }
}

/* -- the thread pool ------------------------------------------------------------------------
 * A job is published as `ticket` = (generation << 40), closed by setting the low bits.
 * Its tasks are cut into chunks, KC_CHUNKS_PER_THREAD per thread; thread k first takes
 * the chunks of its own share (so consecutive steps give each thread the same rows, which
 * stay in its cache) and then any chunk nobody has claimed (so a thread that is slow to
 * wake up, on a busy machine, does not hold the others back). The caller waits only for
 * chunks being run: when every task is done it closes the ticket and waits for the
 * workers inside the job (their `busy` flag) to leave, after which the job's fields may
 * be rewritten. Workers spin for a while between jobs (yielding when other threads want
 * the CPU), then sleep on a condition variable. */
#define KC_CHUNKS_PER_THREAD 4
#define TICKET_INDEX_BITS 40
#define TICKET_CLOSED ((UINT64_C(1) << TICKET_INDEX_BITS) - 1)
#define TICKET_GEN(v) ((v) >> TICKET_INDEX_BITS)
#define TICKET_INDEX(v) ((v) & TICKET_CLOSED)

typedef struct {
    atomic_int value;
    char pad[60];
} kc_flag;

typedef struct kc_pool {
    int nthreads; /* including the thread that calls kcrt_parallel_for */
    pthread_t *workers;
    kc_flag *busy;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    atomic_int stop;
    atomic_int sleepers; /* workers waiting on `wake` (or about to) */
    _Alignas(64) atomic_uint_fast64_t ticket;
    _Alignas(64) atomic_int_fast64_t completed;
    /* the current job: written only while the ticket is closed and no worker is busy */
    kcrt_task_fn fn;
    void *env;
    int64_t ntasks, nchunks;
    kc_flag *claimed; /* per chunk, one cache line each */
    long spin_ns;
} kc_pool;

typedef struct {
    kc_pool *pool;
    int index;
} kc_worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Run the unclaimed chunks of the current job, this thread's share first. */
static void run_chunks(kc_pool *p, int self) {
    kcrt_task_fn fn = p->fn;
    void *env = p->env;
    int64_t ntasks = p->ntasks, nchunks = p->nchunks;
    int64_t share = (nchunks + p->nthreads - 1) / p->nthreads;
    int64_t first = (self * share) % nchunks, done = 0;
    for (int64_t k = 0; k < nchunks; k++) {
        int64_t c = (first + k) % nchunks;
        atomic_int *flag = &p->claimed[c].value;
        if (atomic_load_explicit(flag, memory_order_relaxed) || atomic_exchange(flag, 1)) continue;
        int64_t lo = c * ntasks / nchunks, hi = (c + 1) * ntasks / nchunks;
        fn(env, lo, hi);
        done += hi - lo;
    }
    if (done) atomic_fetch_add(&p->completed, done);
}

static void *worker_main(void *arg_) {
    kc_worker_arg *arg = arg_;
    kc_pool *p = arg->pool;
    atomic_int *busy = &p->busy[arg->index].value;
    int arg_index = arg->index + 1; /* the caller is thread 0 */
    free(arg);
    uint64_t seen = TICKET_GEN(atomic_load(&p->ticket));
    for (;;) {
        long start = now_ns();
        for (int k = 1;; k++) {
            if (atomic_load(&p->stop)) return NULL;
            uint64_t v = atomic_load_explicit(&p->ticket, memory_order_acquire);
            if (TICKET_GEN(v) != seen && TICKET_INDEX(v) != TICKET_CLOSED) break;
            cpu_relax();
            if ((k & 63) == 0) {
                long waited = now_ns() - start;
                if (waited > p->spin_ns) {
                    /* Announce the sleep before the last look at the ticket: a job published
                     * after that look sees sleepers > 0 and broadcasts. */
                    pthread_mutex_lock(&p->mu);
                    atomic_fetch_add(&p->sleepers, 1);
                    for (;;) {
                        v = atomic_load(&p->ticket);
                        if (atomic_load(&p->stop) || (TICKET_GEN(v) != seen && TICKET_INDEX(v) != TICKET_CLOSED)) break;
                        pthread_cond_wait(&p->wake, &p->mu);
                    }
                    atomic_fetch_sub(&p->sleepers, 1);
                    pthread_mutex_unlock(&p->mu);
                    start = now_ns();
                } else if (waited > 20000) {
                    sched_yield(); /* let a thread with work have the CPU */
                }
            }
        }
        atomic_store(busy, 1);
        uint64_t v = atomic_load(&p->ticket);
        seen = TICKET_GEN(v);
        if (TICKET_INDEX(v) != TICKET_CLOSED) run_chunks(p, arg_index);
        atomic_store(busy, 0);
    }
}

static void pool_stop(kc_pool *p, int started) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < started; i++) pthread_join(p->workers[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    free(p->workers);
    free(p->busy);
    free(p->claimed);
    free(p);
}

static kc_pool *pool_start(int nthreads) {
    kc_pool *p = aligned_alloc(64, (sizeof(kc_pool) + 63) & ~(size_t)63);
    if (!p) return NULL;
    memset(p, 0, sizeof *p);
    p->nthreads = nthreads;
    p->workers = calloc((size_t)nthreads, sizeof(pthread_t));
    p->busy = aligned_alloc(64, sizeof(kc_flag) * (size_t)nthreads);
    if (p->busy) memset(p->busy, 0, sizeof(kc_flag) * (size_t)nthreads);
    p->claimed = aligned_alloc(64, sizeof(kc_flag) * (size_t)nthreads * KC_CHUNKS_PER_THREAD);
    if (p->claimed) memset(p->claimed, 0, sizeof(kc_flag) * (size_t)nthreads * KC_CHUNKS_PER_THREAD);
    atomic_store(&p->ticket, TICKET_CLOSED);
    const char *spin = getenv("KC_SPIN_US");
    p->spin_ns = (spin ? atol(spin) : 300) * 1000L;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (!p->workers || !p->busy || !p->claimed) {
        pool_stop(p, 0);
        return NULL;
    }
    for (int i = 0; i < nthreads - 1; i++) {
        kc_worker_arg *arg = malloc(sizeof *arg);
        if (!arg || (arg->pool = p, arg->index = i, pthread_create(&p->workers[i], NULL, worker_main, arg) != 0)) {
            free(arg);
            pool_stop(p, i);
            return NULL;
        }
    }
    return p;
}

static void pool_run(kc_pool *p, kcrt_task_fn fn, void *env, int64_t ntasks) {
    int64_t parts = (int64_t)p->nthreads * KC_CHUNKS_PER_THREAD;
    p->fn = fn;
    p->env = env;
    p->ntasks = ntasks;
    p->nchunks = ntasks < parts ? ntasks : parts;
    for (int64_t c = 0; c < p->nchunks; c++) atomic_store_explicit(&p->claimed[c].value, 0, memory_order_relaxed);
    atomic_store(&p->completed, 0);
    uint64_t gen = (TICKET_GEN(atomic_load(&p->ticket)) + 1) & ((UINT64_C(1) << (64 - TICKET_INDEX_BITS)) - 1);
    atomic_store(&p->ticket, gen << TICKET_INDEX_BITS); /* publish: index 0 of job gen */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunks(p, 0);
    for (int k = 1; atomic_load(&p->completed) < ntasks; k++) {
        cpu_relax();
        if ((k & 1023) == 0) sched_yield();
    }
    /* close the job, then wait for the workers inside it to leave */
    atomic_store(&p->ticket, (gen << TICKET_INDEX_BITS) | TICKET_CLOSED);
    for (int i = 0; i < p->nthreads - 1; i++)
        for (int k = 1; atomic_load(&p->busy[i].value); k++) {
            cpu_relax();
            if ((k & 1023) == 0) sched_yield();
        }
}

/* -- services for the generated code ------------------------------------------------------------ */
typedef struct kc_exec {
    kc_pool *pool;
    atomic_int status;
    int step;
    double *profile; /* seconds per step, when $KC_PROFILE is set */
} kc_exec;

void kcrt_parallel_for(void *exec_, kcrt_task_fn fn, void *env, int64_t ntasks, int64_t cost) {
    kc_exec *exec = exec_;
    long start = exec->profile ? now_ns() : 0;
    if (ntasks > 0) {
        if (!exec->pool || ntasks == 1 || cost < KC_PARALLEL_MIN_COST) fn(env, 0, ntasks);
        else pool_run(exec->pool, fn, env, ntasks);
    }
    if (exec->profile && exec->step < kcrt_model.num_steps) exec->profile[exec->step] += (now_ns() - start) * 1e-9;
    exec->step++;
}

void kcrt_report_error(void *exec_, int32_t status) {
    kc_exec *exec = exec_;
    int expected = KC_OK;
    atomic_compare_exchange_strong(&exec->status, &expected, status);
}

/* -- handles ------------------------------------------------------------------------------------------ */
struct kc_model {
    pthread_mutex_t lock; /* held by the run that uses the workspace and the pool */
    int nthreads;
    double *profile;
    long runs;
    kc_pool *pool;
    void *arena;
    size_t arena_size;
};

static int default_threads(void) {
    const char *env = getenv("KC_NUM_THREADS");
    if (env && atoi(env) > 0) return atoi(env) < KC_MAX_THREADS ? atoi(env) : KC_MAX_THREADS;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set) < KC_MAX_THREADS ? CPU_COUNT(&set) : KC_MAX_THREADS;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < KC_MAX_THREADS ? n : KC_MAX_THREADS) : 1;
}

KC_API int kc_model_create(kc_model **model) {
    if (!model) return fail(KC_ERROR_NULL_POINTER, "kc_model_create: model is NULL");
    *model = NULL;
    kc_model *m = calloc(1, sizeof *m);
    if (!m) return fail(KC_ERROR_OUT_OF_MEMORY, "kc_model_create: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    m->nthreads = default_threads();
    if (getenv("KC_PROFILE") && *getenv("KC_PROFILE") && kcrt_model.num_steps > 0)
        m->profile = calloc((size_t)kcrt_model.num_steps, sizeof(double));
    *model = m;
    return KC_OK;
}

KC_API void kc_model_destroy(kc_model *m) {
    if (!m) return;
    if (m->profile && m->runs) {
        double total = 0;
        for (int k = 0; k < kcrt_model.num_steps; k++) total += m->profile[k];
        fprintf(stderr, "kcompile profile of %s: %ld runs, %.3f ms per run\n", kcrt_model.name, m->runs,
                total / m->runs * 1e3);
        for (int k = 0; k < kcrt_model.num_steps; k++)
            fprintf(stderr, "  %9.4f ms %5.1f%%  %s\n", m->profile[k] / m->runs * 1e3, 100 * m->profile[k] / total,
                    kcrt_model.step_labels[k]);
    }
    free(m->profile);
    if (m->pool) pool_stop(m->pool, m->pool->nthreads - 1);
    free(m->arena);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

KC_API int kc_model_set_num_threads(kc_model *m, int n) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_set_num_threads: model is NULL");
    if (n < 1 || n > KC_MAX_THREADS)
        return fail(KC_ERROR_BAD_ARGUMENT, "kc_model_set_num_threads: %d threads (1..%d allowed)", n, KC_MAX_THREADS);
    pthread_mutex_lock(&m->lock);
    if (m->pool && m->pool->nthreads != n) {
        pool_stop(m->pool, m->pool->nthreads - 1);
        m->pool = NULL;
    }
    m->nthreads = n;
    pthread_mutex_unlock(&m->lock);
    return KC_OK;
}

KC_API int kc_model_num_threads(const kc_model *m) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_num_threads: model is NULL"), -1;
    return m->nthreads;
}

/* -- queries ------------------------------------------------------------------------------------------- */
static const kc_tensor_info *tensor(const kc_model *m, int index, int output, const char *what) {
    if (!m) {
        fail(KC_ERROR_NULL_POINTER, "%s: model is NULL", what);
        return NULL;
    }
    int count = output ? kcrt_model.num_outputs : kcrt_model.num_inputs;
    if (index < 0 || index >= count) {
        fail(KC_ERROR_BAD_INDEX, "%s: index %d out of range (the model has %d %s)", what, index, count,
             output ? "outputs" : "inputs");
        return NULL;
    }
    return output ? &kcrt_model.outputs[index] : &kcrt_model.inputs[index];
}

KC_API int kc_model_num_inputs(const kc_model *m) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_num_inputs: model is NULL"), -1;
    return kcrt_model.num_inputs;
}

KC_API int kc_model_num_outputs(const kc_model *m) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_num_outputs: model is NULL"), -1;
    return kcrt_model.num_outputs;
}

KC_API const char *kc_model_input_name(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 0, "kc_model_input_name");
    return t ? t->name : NULL;
}

KC_API const char *kc_model_output_name(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 1, "kc_model_output_name");
    return t ? t->name : NULL;
}

KC_API int kc_model_input_rank(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 0, "kc_model_input_rank");
    return t ? t->rank : -1;
}

KC_API int kc_model_output_rank(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 1, "kc_model_output_rank");
    return t ? t->rank : -1;
}

static int shape_of(const kc_tensor_info *t, int64_t *dims, int max_dims, const char *what) {
    if (!dims) return fail(KC_ERROR_NULL_POINTER, "%s: dims is NULL", what);
    if (max_dims < t->rank) return fail(KC_ERROR_BAD_ARGUMENT, "%s: rank %d needs max_dims >= %d", what, t->rank, t->rank);
    for (int k = 0; k < t->rank; k++) dims[k] = t->dims[k];
    return KC_OK;
}

KC_API int kc_model_input_shape(const kc_model *m, int i, int64_t *dims, int max_dims) {
    const kc_tensor_info *t = tensor(m, i, 0, "kc_model_input_shape");
    return t ? shape_of(t, dims, max_dims, "kc_model_input_shape") : (m ? KC_ERROR_BAD_INDEX : KC_ERROR_NULL_POINTER);
}

KC_API int kc_model_output_shape(const kc_model *m, int i, int64_t *dims, int max_dims) {
    const kc_tensor_info *t = tensor(m, i, 1, "kc_model_output_shape");
    return t ? shape_of(t, dims, max_dims, "kc_model_output_shape") : (m ? KC_ERROR_BAD_INDEX : KC_ERROR_NULL_POINTER);
}

KC_API int kc_model_input_dtype(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 0, "kc_model_input_dtype");
    return t ? t->dtype : -1;
}

KC_API int kc_model_output_dtype(const kc_model *m, int i) {
    const kc_tensor_info *t = tensor(m, i, 1, "kc_model_output_dtype");
    return t ? t->dtype : -1;
}

static int64_t elements(const kc_tensor_info *t, int64_t batch) {
    return t->dynamic_axis >= 0 ? t->static_count * t->factor * batch : t->static_count;
}

static int size_of(const kc_model *m, int i, int output, int64_t batch, int64_t *count, const char *what) {
    const kc_tensor_info *t = tensor(m, i, output, what);
    if (!t) return m ? KC_ERROR_BAD_INDEX : KC_ERROR_NULL_POINTER;
    if (!count) return fail(KC_ERROR_NULL_POINTER, "%s: count is NULL", what);
    if (batch < 1 || (t->dynamic_axis >= 0 && batch > INT64_MAX / 16 / (t->static_count * t->factor)))
        return fail(KC_ERROR_BAD_BATCH, "%s: batch %lld", what, (long long)batch);
    *count = elements(t, batch);
    return KC_OK;
}

KC_API int kc_model_input_size(const kc_model *m, int i, int64_t batch, int64_t *count) {
    return size_of(m, i, 0, batch, count, "kc_model_input_size");
}

KC_API int kc_model_output_size(const kc_model *m, int i, int64_t batch, int64_t *count) {
    return size_of(m, i, 1, batch, count, "kc_model_output_size");
}

KC_API int kc_model_has_batch(const kc_model *m) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_has_batch: model is NULL"), -1;
    return kcrt_model.has_batch;
}

KC_API const char *kc_model_name(const kc_model *m) {
    if (!m) return fail(KC_ERROR_NULL_POINTER, "kc_model_name: model is NULL"), (const char *)NULL;
    return kcrt_model.name;
}

/* -- running ------------------------------------------------------------------------------------------------ */
static const size_t ITEMSIZE[] = {4, 4, 8, 1};

static char *tensor_ptr(const kc_tensor_info *t, char *arena, int64_t batch) {
    char *base = t->base == 0 ? arena : (char *)kcrt_weights;
    return base + t->per_sample * batch + t->offset;
}

/* Copy a float buffer into a tensor of another dtype; checks the values. */
static int from_float(const kc_tensor_info *t, char *dst, const float *src, int64_t n, int index) {
    for (int64_t k = 0; k < n; k++) {
        float v = src[k];
        switch (t->dtype) {
        case KC_INT32:
        case KC_INT64:
            if (!isfinite(v) || v != floorf(v) || fabsf(v) > 16777216.0f)
                return fail(KC_ERROR_INPUT_VALUE, "input %d (%s): element %lld = %g is not a whole number", index,
                            t->name, (long long)k, (double)v);
            if (t->dtype == KC_INT32) ((int32_t *)dst)[k] = (int32_t)v;
            else ((int64_t *)dst)[k] = (int64_t)v;
            break;
        case KC_BOOL:
            ((uint8_t *)dst)[k] = v != 0.0f;
            break;
        }
    }
    return KC_OK;
}

static void to_float(const kc_tensor_info *t, float *dst, const char *src, int64_t n) {
    for (int64_t k = 0; k < n; k++) {
        switch (t->dtype) {
        case KC_INT32: dst[k] = (float)((const int32_t *)src)[k]; break;
        case KC_INT64: dst[k] = (float)((const int64_t *)src)[k]; break;
        case KC_BOOL: dst[k] = (float)((const uint8_t *)src)[k]; break;
        }
    }
}

static int run(kc_model *m, const void *const *inputs, int num_inputs, void *const *outputs, int num_outputs,
               int64_t batch, int flags, const char *what) {
    const kc_model_info *info = &kcrt_model;
    if (!m) return fail(KC_ERROR_NULL_POINTER, "%s: model is NULL", what);
    if (flags & ~KC_RUN_NATIVE_TYPES) return fail(KC_ERROR_BAD_ARGUMENT, "%s: unknown flags %#x", what, flags);
    if (num_inputs != info->num_inputs)
        return fail(KC_ERROR_BAD_COUNT, "%s: the model takes %d inputs, got %d", what, info->num_inputs, num_inputs);
    if (num_outputs != info->num_outputs)
        return fail(KC_ERROR_BAD_COUNT, "%s: the model has %d outputs, got %d", what, info->num_outputs, num_outputs);
    if (!inputs && info->num_inputs) return fail(KC_ERROR_NULL_POINTER, "%s: inputs is NULL", what);
    if (!outputs && info->num_outputs) return fail(KC_ERROR_NULL_POINTER, "%s: outputs is NULL", what);
    for (int i = 0; i < info->num_inputs; i++)
        if (!inputs[i]) return fail(KC_ERROR_NULL_POINTER, "%s: inputs[%d] (%s) is NULL", what, i, info->inputs[i].name);
    for (int i = 0; i < info->num_outputs; i++)
        if (!outputs[i])
            return fail(KC_ERROR_NULL_POINTER, "%s: outputs[%d] (%s) is NULL", what, i, info->outputs[i].name);
    if (batch < 1) return fail(KC_ERROR_BAD_BATCH, "%s: batch %lld (must be >= 1)", what, (long long)batch);
    if (!info->has_batch && batch != 1)
        return fail(KC_ERROR_BAD_BATCH, "%s: batch %lld for a model without a batch dimension (use 1)", what,
                    (long long)batch);
    int64_t per = info->arena_per_sample > 0 ? info->arena_per_sample : 1;
    if (batch > (INT64_MAX / 2 - info->arena_static) / per)
        return fail(KC_ERROR_BAD_BATCH, "%s: batch %lld is too large", what, (long long)batch);
    /* Large batches run in slices (micro-batches) that keep the activations in cache. */
    int64_t chunk = batch;
    const char *mb = getenv("KC_MICROBATCH");
    int64_t limit = mb ? atoll(mb) : info->microbatch;
    if (info->microbatch > 0 && limit > 0 && batch > limit) chunk = limit;
    size_t need = (size_t)(info->arena_per_sample * chunk + info->arena_static + 64);
    need = (need + 63) & ~(size_t)63;

    kc_exec exec = {NULL, KC_OK, 0, NULL};
    void *arena = NULL;
    int owner = pthread_mutex_trylock(&m->lock) == 0;
    if (owner) {
        if (m->arena_size < need) {
            void *bigger = aligned_alloc(64, need);
            if (!bigger) {
                pthread_mutex_unlock(&m->lock);
                return fail(KC_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for batch %lld", what, need,
                            (long long)batch);
            }
            free(m->arena);
            m->arena = bigger;
            m->arena_size = need;
        }
        arena = m->arena;
        if (m->nthreads > 1 && !m->pool) m->pool = pool_start(m->nthreads); /* NULL: run on this thread */
        exec.pool = m->pool;
        exec.profile = m->profile;
        m->runs += m->profile != NULL;
    } else {
        arena = aligned_alloc(64, need);
        if (!arena)
            return fail(KC_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes for batch %lld", what, need,
                        (long long)batch);
    }

    int status = KC_OK;
    for (int64_t b0 = 0; b0 < batch && status == KC_OK; b0 += chunk) {
        int64_t n_b = batch - b0 < chunk ? batch - b0 : chunk;
        int last = b0 + n_b >= batch;
        for (int i = 0; i < info->num_inputs && status == KC_OK; i++) {
            const kc_tensor_info *t = &info->inputs[i];
            int64_t n = elements(t, n_b), skip = t->dynamic_axis < 0 ? 0 : elements(t, b0);
            size_t size = ITEMSIZE[t->dtype];
            char *dst = tensor_ptr(t, arena, n_b);
            if ((flags & KC_RUN_NATIVE_TYPES) || t->dtype == KC_FLOAT32)
                memcpy(dst, (const char *)inputs[i] + skip * size, (size_t)n * size);
            else
                status = from_float(t, dst, (const float *)inputs[i] + skip, n, i);
        }
        if (status != KC_OK) break;
        kcgen_forward(arena, kcrt_weights, n_b, &exec);
        exec.step = 0;
        status = atomic_load(&exec.status);
        if (status != KC_OK) {
            fail(status, "%s: an input value is out of range (an embedding index beyond the table)", what);
            break;
        }
        for (int i = 0; i < info->num_outputs; i++) {
            const kc_tensor_info *t = &info->outputs[i];
            if (t->dynamic_axis < 0 && !last) continue;
            int64_t n = elements(t, n_b), skip = t->dynamic_axis < 0 ? 0 : elements(t, b0);
            size_t size = (flags & KC_RUN_NATIVE_TYPES) ? ITEMSIZE[t->dtype] : 4;
            const char *src = tensor_ptr(t, arena, n_b);
            if ((flags & KC_RUN_NATIVE_TYPES) || t->dtype == KC_FLOAT32)
                memcpy((char *)outputs[i] + skip * size, src, (size_t)n * size);
            else
                to_float(t, (float *)outputs[i] + skip, src, n);
        }
    }
    if (owner) pthread_mutex_unlock(&m->lock);
    else free(arena);
    return status;
}

KC_API int kc_model_run(kc_model *m, const float *const inputs[], float *const outputs[], int64_t batch) {
    return run(m, (const void *const *)inputs, kcrt_model.num_inputs, (void *const *)outputs, kcrt_model.num_outputs,
               batch, 0, "kc_model_run");
}

KC_API int kc_model_run_ex(kc_model *m, const void *const inputs[], int num_inputs, void *const outputs[],
                           int num_outputs, int64_t batch, int flags) {
    return run(m, inputs, num_inputs, outputs, num_outputs, batch, flags, "kc_model_run_ex");
}
