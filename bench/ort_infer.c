/* Runs onnxruntime's inference of an ONNX model N times on one thread, through its C API, for
 * bench/arm_instructions.sh: the peer's count beside tract's and ours, from the same fixed input as core/examples/infer.rs
 * (its values ((i * 7919) % 1000) / 250 - 2). Linked against the published aarch64 wheel's libonnxruntime.so.
 * Usage: ort_infer MODEL.onnx INPUT_NAME OUTPUT_NAME SHAPE N   (SHAPE as 1x3x224x224; exit status 1 with
 * onnxruntime's message on an error of its own)
 *
 * No onnxruntime header is needed: OrtApi is a table of function pointers that onnxruntime only ever appends to,
 * so the few entries used are declared here by their index in it (onnxruntime_c_api.h, API version 1 onwards). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef void OrtStatus;
typedef struct {
    void *const *(*GetApi)(uint32_t version);
    const char *(*GetVersionString)(void);
} OrtApiBase;
extern const OrtApiBase *OrtGetApiBase(void);

/* Indices in OrtApi. */
enum {
    GET_ERROR_MESSAGE = 2,
    CREATE_ENV = 3,
    CREATE_SESSION = 7,
    RUN = 9,
    CREATE_SESSION_OPTIONS = 10,
    SET_SESSION_GRAPH_OPTIMIZATION_LEVEL = 23,
    SET_INTRA_OP_NUM_THREADS = 24,
    CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE = 49,
    CREATE_CPU_MEMORY_INFO = 69,
    RELEASE_VALUE = 96,
};
enum { LOGGING_LEVEL_WARNING = 2, ENABLE_ALL = 99, ARENA_ALLOCATOR = 1, MEM_TYPE_DEFAULT = 0, ELEMENT_FLOAT = 1 };

static void *const *api;

/* Exits with onnxruntime's message when `status` is an error. */
static void check(OrtStatus *status, const char *what) {
    if (status) {
        const char *(*message)(OrtStatus *) = (const char *(*)(OrtStatus *))api[GET_ERROR_MESSAGE];
        fprintf(stderr, "onnxruntime: %s: %s\n", what, message(status));
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL.onnx INPUT_NAME OUTPUT_NAME SHAPE N\n", argv[0]);
        return 2;
    }
    const OrtApiBase *base = OrtGetApiBase();
    api = base->GetApi(1);
    int n = atoi(argv[5]);
    int64_t shape[8];
    size_t rank = 0, len = 1;
    for (char *dim = argv[4]; *dim && rank < 8; dim += *dim == 'x') {
        shape[rank] = strtoll(dim, &dim, 10);
        len *= (size_t)shape[rank++];
    }
    float *input = malloc(len * sizeof *input);
    for (size_t i = 0; i < len; i++) input[i] = (float)((i * 7919) % 1000) / 250.0f - 2.0f;

    void *env, *options, *session, *memory, *value;
    check(((OrtStatus * (*)(int, const char *, void **)) api[CREATE_ENV])(LOGGING_LEVEL_WARNING, "bench", &env), "env");
    check(((OrtStatus * (*)(void **)) api[CREATE_SESSION_OPTIONS])(&options), "options");
    check(((OrtStatus * (*)(void *, int)) api[SET_INTRA_OP_NUM_THREADS])(options, 1), "threads");
    check(((OrtStatus * (*)(void *, int)) api[SET_SESSION_GRAPH_OPTIMIZATION_LEVEL])(options, ENABLE_ALL), "optimization");
    check(((OrtStatus * (*)(void *, const char *, void *, void **)) api[CREATE_SESSION])(env, argv[1], options, &session),
          "session");
    check(((OrtStatus * (*)(int, int, void **)) api[CREATE_CPU_MEMORY_INFO])(ARENA_ALLOCATOR, MEM_TYPE_DEFAULT, &memory),
          "memory info");
    check(((OrtStatus * (*)(void *, void *, size_t, const int64_t *, size_t, int, void **))
               api[CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE])(memory, input, len * sizeof *input, shape, rank, ELEMENT_FLOAT,
                                                          &value),
          "input tensor");
    const char *inputs[] = {argv[2]}, *outputs[] = {argv[3]};
    OrtStatus *(*run)(void *, void *, const char *const *, const void *const *, size_t, const char *const *, size_t,
                      void **) = (OrtStatus * (*)(void *, void *, const char *const *, const void *const *, size_t,
                                                  const char *const *, size_t, void **)) api[RUN];
    for (int i = 0; i < n; i++) {
        void *out = NULL;
        check(run(session, NULL, inputs, (const void *const *)&value, 1, outputs, 1, &out), "run");
        ((void (*)(void *))api[RELEASE_VALUE])(out);
    }
    printf("%d inferences, onnxruntime %s\n", n, base->GetVersionString());
    return 0;
}
