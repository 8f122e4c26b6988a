/* kc_runner: a small C driver for kcompile native libraries (no Python in its process).
 *
 *   kc_runner LIB.so run BATCH [--native] IN.bin ... -- OUT.bin ...
 *       read each input from a raw file (float32, or the input's own dtype with
 *       --native), run once, write each output raw (float32 / own dtype).
 *   kc_runner LIB.so bench BATCH SECONDS [THREADS]
 *       time kc_model_run on synthetic inputs; prints one JSON line.
 *   kc_runner LIB.so info
 *       the inputs and outputs with their shapes.
 *
 * Build: gcc -O2 -o kc_runner kc_runner.c -ldl -I<folder of kc_model.h>
 * The library is loaded with dlopen, so one runner serves every model.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kc_model.h"

static struct {
    int (*create)(kc_model **);
    void (*destroy)(kc_model *);
    int (*run)(kc_model *, const float *const[], float *const[], int64_t);
    int (*run_ex)(kc_model *, const void *const[], int, void *const[], int, int64_t, int);
    int (*set_threads)(kc_model *, int);
    int (*num_inputs)(const kc_model *);
    int (*num_outputs)(const kc_model *);
    const char *(*input_name)(const kc_model *, int);
    const char *(*output_name)(const kc_model *, int);
    int (*input_rank)(const kc_model *, int);
    int (*output_rank)(const kc_model *, int);
    int (*input_shape)(const kc_model *, int, int64_t *, int);
    int (*output_shape)(const kc_model *, int, int64_t *, int);
    int (*input_dtype)(const kc_model *, int);
    int (*output_dtype)(const kc_model *, int);
    int (*input_size)(const kc_model *, int, int64_t, int64_t *);
    int (*output_size)(const kc_model *, int, int64_t, int64_t *);
    const char *(*last_error)(void);
} api;

static const size_t ITEMSIZE[] = {4, 4, 8, 1};

static void *sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "kc_runner: %s: %s\n", name, dlerror());
        exit(3);
    }
    return p;
}

static void load(const char *path) {
    char local[4096];
    if (!strchr(path, '/')) { /* dlopen searches the library path for bare names */
        snprintf(local, sizeof local, "./%s", path);
        path = local;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "kc_runner: %s\n", dlerror());
        exit(3);
    }
    *(void **)&api.create = sym(lib, "kc_model_create");
    *(void **)&api.destroy = sym(lib, "kc_model_destroy");
    *(void **)&api.run = sym(lib, "kc_model_run");
    *(void **)&api.run_ex = sym(lib, "kc_model_run_ex");
    *(void **)&api.set_threads = sym(lib, "kc_model_set_num_threads");
    *(void **)&api.num_inputs = sym(lib, "kc_model_num_inputs");
    *(void **)&api.num_outputs = sym(lib, "kc_model_num_outputs");
    *(void **)&api.input_name = sym(lib, "kc_model_input_name");
    *(void **)&api.output_name = sym(lib, "kc_model_output_name");
    *(void **)&api.input_rank = sym(lib, "kc_model_input_rank");
    *(void **)&api.output_rank = sym(lib, "kc_model_output_rank");
    *(void **)&api.input_shape = sym(lib, "kc_model_input_shape");
    *(void **)&api.output_shape = sym(lib, "kc_model_output_shape");
    *(void **)&api.input_dtype = sym(lib, "kc_model_input_dtype");
    *(void **)&api.output_dtype = sym(lib, "kc_model_output_dtype");
    *(void **)&api.input_size = sym(lib, "kc_model_input_size");
    *(void **)&api.output_size = sym(lib, "kc_model_output_size");
    *(void **)&api.last_error = sym(lib, "kc_last_error");
}

static void check(int status, const char *what) {
    if (status != KC_OK) {
        fprintf(stderr, "kc_runner: %s failed (%d): %s\n", what, status, api.last_error());
        exit(4);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void *read_file(const char *path, size_t expected) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "kc_runner: cannot open %s\n", path);
        exit(5);
    }
    void *data = malloc(expected ? expected : 1);
    size_t got = fread(data, 1, expected, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != expected || extra) {
        fprintf(stderr, "kc_runner: %s: expected %zu bytes\n", path, expected);
        exit(5);
    }
    return data;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "kc_runner: cannot write %s\n", path);
        exit(5);
    }
    fclose(f);
}

static int cmd_run(kc_model *m, int argc, char **argv) {
    int64_t batch = atoll(argv[0]);
    int native = 0, a = 1;
    if (a < argc && strcmp(argv[a], "--native") == 0) native = 1, a++;
    int nin = api.num_inputs(m), nout = api.num_outputs(m);
    void **inputs = calloc((size_t)nin + 1, sizeof(void *)), **outputs = calloc((size_t)nout + 1, sizeof(void *));
    size_t *out_bytes = calloc((size_t)nout + 1, sizeof(size_t));
    for (int i = 0; i < nin; i++, a++) {
        if (a >= argc || strcmp(argv[a], "--") == 0) {
            fprintf(stderr, "kc_runner: the model takes %d inputs\n", nin);
            return 2;
        }
        int64_t n;
        check(api.input_size(m, i, batch, &n), "kc_model_input_size");
        inputs[i] = read_file(argv[a], (size_t)n * (native ? ITEMSIZE[api.input_dtype(m, i)] : 4));
    }
    if (a >= argc || strcmp(argv[a], "--") != 0) {
        fprintf(stderr, "kc_runner: expected -- before the output files\n");
        return 2;
    }
    a++;
    if (argc - a != nout) {
        fprintf(stderr, "kc_runner: the model has %d outputs, got %d files\n", nout, argc - a);
        return 2;
    }
    for (int i = 0; i < nout; i++) {
        int64_t n;
        check(api.output_size(m, i, batch, &n), "kc_model_output_size");
        out_bytes[i] = (size_t)n * (native ? ITEMSIZE[api.output_dtype(m, i)] : 4);
        outputs[i] = malloc(out_bytes[i] ? out_bytes[i] : 1);
    }
    if (native)
        check(api.run_ex(m, (const void *const *)inputs, nin, outputs, nout, batch, KC_RUN_NATIVE_TYPES),
              "kc_model_run_ex");
    else
        check(api.run(m, (const float *const *)inputs, (float *const *)outputs, batch), "kc_model_run");
    for (int i = 0; i < nout; i++) write_file(argv[a + i], outputs[i], out_bytes[i]);
    return 0;
}

static int cmd_bench(kc_model *m, int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "kc_runner: bench BATCH SECONDS [THREADS]\n");
        return 2;
    }
    int64_t batch = atoll(argv[0]);
    double seconds = atof(argv[1]);
    if (argc > 2) check(api.set_threads(m, atoi(argv[2])), "kc_model_set_num_threads");
    int nin = api.num_inputs(m), nout = api.num_outputs(m);
    float **inputs = calloc((size_t)nin + 1, sizeof(float *)), **outputs = calloc((size_t)nout + 1, sizeof(float *));
    for (int i = 0; i < nin; i++) {
        int64_t n;
        check(api.input_size(m, i, batch, &n), "kc_model_input_size");
        inputs[i] = malloc((size_t)n * 4 + 4);
        int integer = api.input_dtype(m, i) != KC_FLOAT32;
        for (int64_t k = 0; k < n; k++)
            inputs[i][k] = integer ? (float)(k % 10) : (float)((k * 7919 % 2001) - 1000) / 1000.0f;
    }
    for (int i = 0; i < nout; i++) {
        int64_t n;
        check(api.output_size(m, i, batch, &n), "kc_model_output_size");
        outputs[i] = malloc((size_t)n * 4 + 4);
    }
    double start = now();
    int warm = 0;
    while (warm < 3 || now() - start < 0.2) {
        check(api.run(m, (const float *const *)inputs, outputs, batch), "kc_model_run");
        warm++;
    }
    size_t cap = 1 << 16, n = 0;
    double *times = malloc(cap * sizeof(double));
    start = now();
    while (n < 5 || (now() - start < seconds && n < cap)) {
        double t0 = now();
        check(api.run(m, (const float *const *)inputs, outputs, batch), "kc_model_run");
        times[n++] = now() - t0;
    }
    double total = 0;
    for (size_t k = 0; k < n; k++) total += times[k];
    qsort(times, n, sizeof(double), cmp_double);
    printf("{\"batch\": %lld, \"runs\": %zu, \"median_ms\": %.6f, \"mean_ms\": %.6f, \"min_ms\": %.6f, "
           "\"samples_per_s\": %.3f}\n",
           (long long)batch, n, times[n / 2] * 1e3, total / n * 1e3, times[0] * 1e3, batch / times[n / 2]);
    return 0;
}

static void print_tensor(const kc_model *m, int i, int output) {
    int64_t dims[8];
    int rank = output ? api.output_rank(m, i) : api.input_rank(m, i);
    if (output) api.output_shape(m, i, dims, 8);
    else api.input_shape(m, i, dims, 8);
    printf("%s %d %s dtype=%d shape=(", output ? "output" : "input", i,
           output ? api.output_name(m, i) : api.input_name(m, i), output ? api.output_dtype(m, i) : api.input_dtype(m, i));
    for (int k = 0; k < rank; k++) printf(k ? ", %lld" : "%lld", (long long)dims[k]);
    printf(")\n");
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: kc_runner LIB.so run BATCH [--native] IN... -- OUT... | bench BATCH SECONDS [THREADS]"
                        " | info\n");
        return 2;
    }
    load(argv[1]);
    kc_model *m;
    check(api.create(&m), "kc_model_create");
    int rc = 2;
    if (strcmp(argv[2], "run") == 0 && argc > 3) rc = cmd_run(m, argc - 3, argv + 3);
    else if (strcmp(argv[2], "bench") == 0) rc = cmd_bench(m, argc - 3, argv + 3);
    else if (strcmp(argv[2], "info") == 0) {
        for (int i = 0; i < api.num_inputs(m); i++) print_tensor(m, i, 0);
        for (int i = 0; i < api.num_outputs(m); i++) print_tensor(m, i, 1);
        rc = 0;
    } else fprintf(stderr, "kc_runner: unknown command %s\n", argv[2]);
    api.destroy(m);
    return rc;
}
