/* Bad input to the C API returns error codes and messages, never a crash.
 *
 * Built by tests/native/test_c_api.py against a library of a small model with two
 * inputs, x: float32 (batch, 5) and tokens: int32 (batch, 3), and two outputs
 * (a dense layer of x; rows of a 10-row table gathered by tokens). The library is
 * linked directly (-lNAME) through its generated header. Exits 0 when every check
 * holds; prints each failed check. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include MODEL_HEADER

static int failures = 0;

#define CHECK(cond)                                                                 \
    do {                                                                            \
        if (!(cond)) {                                                              \
            printf("FAILED line %d: %s (last error: %s)\n", __LINE__, #cond, kc_last_error()); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

/* status == expected, and the calling thread's message names what went wrong */
#define EXPECT(call, expected, needle)                                              \
    do {                                                                            \
        int status_ = (call);                                                       \
        if (status_ != (expected) || strstr(kc_last_error(), needle) == NULL) {     \
            printf("FAILED line %d: %s returned %d (%s), expected %s; message '%s' lacks '%s'\n", __LINE__, #call, \
                   status_, kc_status_string(status_), #expected, kc_last_error(), needle); \
            failures++;                                                             \
        }                                                                           \
    } while (0)

int main(void) {
    kc_model *m = NULL;
    EXPECT(kc_model_create(NULL), KC_ERROR_NULL_POINTER, "model is NULL");
    CHECK(kc_model_create(&m) == KC_OK && m != NULL);
    if (!m) return 1;

    /* queries */
    CHECK(kc_model_num_inputs(m) == 2);
    CHECK(kc_model_num_outputs(m) == 2);
    CHECK(kc_model_num_inputs(NULL) == -1);
    CHECK(kc_model_input_name(m, 2) == NULL && strstr(kc_last_error(), "out of range") != NULL);
    CHECK(kc_model_input_name(m, -1) == NULL);
    CHECK(kc_model_output_name(NULL, 0) == NULL);
    CHECK(kc_model_input_rank(m, 7) == -1);
    CHECK(kc_model_input_dtype(m, 0) == KC_FLOAT32);
    CHECK(kc_model_input_dtype(m, 1) == KC_INT32);
    int64_t dims[4] = {0};
    CHECK(kc_model_input_shape(m, 0, dims, 4) == KC_OK && dims[0] == -1 && dims[1] == 5);
    EXPECT(kc_model_input_shape(m, 0, NULL, 4), KC_ERROR_NULL_POINTER, "dims is NULL");
    EXPECT(kc_model_input_shape(m, 0, dims, 1), KC_ERROR_BAD_ARGUMENT, "max_dims");
    EXPECT(kc_model_output_shape(m, 5, dims, 4), KC_ERROR_BAD_INDEX, "out of range");
    EXPECT(kc_model_output_shape(NULL, 0, dims, 4), KC_ERROR_NULL_POINTER, "model is NULL");
    int64_t count = 0;
    CHECK(kc_model_input_size(m, 1, 4, &count) == KC_OK && count == 12);
    EXPECT(kc_model_input_size(m, 1, 0, &count), KC_ERROR_BAD_BATCH, "batch 0");
    EXPECT(kc_model_input_size(m, 1, 4, NULL), KC_ERROR_NULL_POINTER, "count is NULL");
    EXPECT(kc_model_set_num_threads(m, 0), KC_ERROR_BAD_ARGUMENT, "0 threads");
    EXPECT(kc_model_set_num_threads(NULL, 2), KC_ERROR_NULL_POINTER, "model is NULL");
    CHECK(strcmp(kc_status_string(KC_ERROR_BAD_BATCH), "KC_ERROR_BAD_BATCH") == 0);
    CHECK(kc_status_string(12345) != NULL);

    /* runs */
    float x[4 * 5], tokens[4 * 3], y0[4 * 7], y1[4 * 3 * 4];
    for (int i = 0; i < 20; i++) x[i] = (float)i / 10.0f;
    for (int i = 0; i < 12; i++) tokens[i] = (float)(i % 10);
    const float *inputs[] = {x, tokens};
    float *outputs[] = {y0, y1};
    CHECK(kc_model_run(m, inputs, outputs, 4) == KC_OK);

    EXPECT(kc_model_run(NULL, inputs, outputs, 4), KC_ERROR_NULL_POINTER, "model is NULL");
    EXPECT(kc_model_run(m, NULL, outputs, 4), KC_ERROR_NULL_POINTER, "inputs is NULL");
    EXPECT(kc_model_run(m, inputs, NULL, 4), KC_ERROR_NULL_POINTER, "outputs is NULL");
    const float *missing_input[] = {x, NULL};
    EXPECT(kc_model_run(m, missing_input, outputs, 4), KC_ERROR_NULL_POINTER, "inputs[1]");
    float *missing_output[] = {NULL, y1};
    EXPECT(kc_model_run(m, inputs, missing_output, 4), KC_ERROR_NULL_POINTER, "outputs[0]");
    EXPECT(kc_model_run(m, inputs, outputs, 0), KC_ERROR_BAD_BATCH, "batch 0");
    EXPECT(kc_model_run(m, inputs, outputs, -3), KC_ERROR_BAD_BATCH, "batch -3");
    EXPECT(kc_model_run(m, inputs, outputs, INT64_MAX), KC_ERROR_BAD_BATCH, "too large");
    EXPECT(kc_model_run(m, inputs, outputs, INT64_MAX / 4), KC_ERROR_BAD_BATCH, "too large");

    const void *vin[] = {x, tokens};
    void *vout[] = {y0, y1};
    EXPECT(kc_model_run_ex(m, vin, 1, vout, 2, 4, 0), KC_ERROR_BAD_COUNT, "takes 2 inputs, got 1");
    EXPECT(kc_model_run_ex(m, vin, 3, vout, 2, 4, 0), KC_ERROR_BAD_COUNT, "takes 2 inputs, got 3");
    EXPECT(kc_model_run_ex(m, vin, -1, vout, 2, 4, 0), KC_ERROR_BAD_COUNT, "got -1");
    EXPECT(kc_model_run_ex(m, vin, 2, vout, 1, 4, 0), KC_ERROR_BAD_COUNT, "has 2 outputs, got 1");
    EXPECT(kc_model_run_ex(m, vin, 2, vout, 2, 4, 0x40), KC_ERROR_BAD_ARGUMENT, "flags");
    CHECK(kc_model_run_ex(m, vin, 2, vout, 2, 4, 0) == KC_OK);

    /* input values the model cannot use */
    tokens[5] = 10.0f; /* the table has 10 rows */
    EXPECT(kc_model_run(m, inputs, outputs, 4), KC_ERROR_INPUT_VALUE, "out of range");
    tokens[5] = -1.0f;
    EXPECT(kc_model_run(m, inputs, outputs, 4), KC_ERROR_INPUT_VALUE, "out of range");
    tokens[5] = 2.5f; /* not a whole number */
    EXPECT(kc_model_run(m, inputs, outputs, 4), KC_ERROR_INPUT_VALUE, "whole number");
    tokens[5] = 1.0f / 0.0f;
    EXPECT(kc_model_run(m, inputs, outputs, 4), KC_ERROR_INPUT_VALUE, "whole number");
    int32_t native_tokens[12];
    for (int i = 0; i < 12; i++) native_tokens[i] = i % 10;
    native_tokens[11] = 1 << 30;
    const void *native_in[] = {x, native_tokens};
    EXPECT(kc_model_run_ex(m, native_in, 2, vout, 2, 4, KC_RUN_NATIVE_TYPES), KC_ERROR_INPUT_VALUE, "out of range");

    /* the handle still works after the errors */
    tokens[5] = 5.0f;
    float again[4 * 7];
    float *outputs2[] = {again, y1};
    CHECK(kc_model_run(m, inputs, outputs2, 4) == KC_OK);
    CHECK(memcmp(again, y0, sizeof again) == 0);
    CHECK(kc_model_set_num_threads(m, 1) == KC_OK && kc_model_num_threads(m) == 1);
    CHECK(kc_model_run(m, inputs, outputs2, 4) == KC_OK);
    CHECK(memcmp(again, y0, sizeof again) == 0);

    kc_model_destroy(m);
    kc_model_destroy(NULL);
    if (failures) {
        printf("%d checks failed\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
