// floor: the least a data-parallel training epoch of dptrain's MLP or CNN can cost on this
// machine. Per step, each rank runs only the matrix products of forward and backward (and, for
// the CNN, the im2col they need) on its slice of the global batch, then one in-place
// MPI_Allreduce of the flat gradient; no activation, loss, pooling, optimizer or shuffling.
// A trainer that does all of that and comes within a few percent of this is at the floor.
//
//   mpicc -O2 Benchmarks/floor/floor.c -o floor $(pkg-config --cflags --libs openblas)
//   mpirun -np 2 -x OPENBLAS_NUM_THREADS=1 ./floor --model mlp --batch 32 --epochs 3
//   mpirun -np 1 --bind-to none -x OPENBLAS_NUM_THREADS=2 ./floor --model cnn --batch 128
//
// --model mlp|cnn, --batch GLOBAL (split across ranks as dptrain splits it: rank r of R takes
// samples r*b/R ..< (r+1)*b/R of each global batch of b, the last partial batch of the 60,000
// kept), --epochs E (timed, after one untimed warm-up epoch), --no-allreduce (compute only).
// Each rank streams through a shard of 60,000/R samples of its own (not cache-resident, as in
// training). Prints one JSON line: epoch seconds (slowest rank; median, min, max over the
// epochs) and per-step medians of compute and allreduce on rank 0.
#include <cblas.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SAMPLES = 60000, PIXELS = 784, HIDDEN = 128, CLASSES = 10, FILTERS = 32, FIELD = 9, POSITIONS = 676, POOLED = 5408 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    if (n == 0) return 0;
    qsort(v, (size_t)n, sizeof *v, ascending);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// n floats, 64-byte aligned, small pseudo-random values.
static float *floats(size_t n, unsigned *seed) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!p) { fprintf(stderr, "floor: out of memory (%zu floats)\n", n); MPI_Abort(MPI_COMM_WORLD, 1); }
    for (size_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / (float)RAND_MAX * 0.1f - 0.05f;
    return p;
}

// C[m,n] = op(A) op(B), row-major, lda/ldb as stored.
static void gemm(int transA, int transB, int m, int n, int k, const float *a, const float *b, float *c) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                a, transA ? m : k, b, transB ? k : n, 0.0f, c, n);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    const char *model = "mlp";
    int batch = 32, epochs = 3, allreduce = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-allreduce")) allreduce = 0;
        else {
            if (rank == 0) fprintf(stderr, "floor: unknown argument '%s' (see the first lines of floor.c)\n", argv[i]);
            MPI_Abort(MPI_COMM_WORLD, 2);
        }
    }
    int cnn = !strcmp(model, "cnn");
    if ((!cnn && strcmp(model, "mlp")) || batch < ranks || epochs < 1) {
        if (rank == 0) fprintf(stderr, "floor: need --model mlp|cnn, --batch >= ranks (%d), --epochs >= 1\n", ranks);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int local = (batch + ranks - 1) / ranks;  // the largest slice a rank gets
    int shard = SAMPLES / ranks, steps = (SAMPLES + batch - 1) / batch;
    unsigned seed = 1u + (unsigned)rank;

    // One flat gradient buffer; the weight-gradient products write straight into it.
    long gradients = cnn ? (long)FIELD * FILTERS + FILTERS + (long)POOLED * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES
                         : (long)PIXELS * HIDDEN + HIDDEN + HIDDEN * CLASSES + CLASSES;
    float *grad = floats((size_t)gradients, &seed);
    float *conv_grad = grad, *dense1_grad = cnn ? grad + FIELD * FILTERS + FILTERS : grad;
    float *dense2_grad = dense1_grad + (long)(cnn ? POOLED : PIXELS) * HIDDEN + HIDDEN;
    int dense1_in = cnn ? POOLED : PIXELS;
    float *images = floats((size_t)shard * PIXELS, &seed);
    float *w1 = floats((size_t)dense1_in * HIDDEN, &seed), *w2 = floats(HIDDEN * CLASSES, &seed);
    float *hidden = floats((size_t)local * HIDDEN, &seed), *logits = floats((size_t)local * CLASSES, &seed);
    float *dlogits = floats((size_t)local * CLASSES, &seed), *dhidden = floats((size_t)local * HIDDEN, &seed);
    float *cols = 0, *wc = 0, *conv = 0, *dconv = 0, *pooled = 0, *dpooled = 0;
    if (cnn) {
        cols = floats((size_t)local * POSITIONS * FIELD, &seed), wc = floats(FIELD * FILTERS, &seed);
        conv = floats((size_t)local * POSITIONS * FILTERS, &seed), dconv = floats((size_t)local * POSITIONS * FILTERS, &seed);
        pooled = floats((size_t)local * POOLED, &seed), dpooled = floats((size_t)local * POOLED, &seed);
    }
    double *epoch_s = calloc((size_t)epochs, sizeof(double));
    double *compute = calloc((size_t)steps * epochs, sizeof(double)), *reduce = calloc((size_t)steps * epochs, sizeof(double));
    int timed = 0;
    long cursor = 0;  // the next sample of the shard, wrapping

    for (int e = -1; e < epochs; e++) {  // epoch -1 warms caches, BLAS and MPI up
        MPI_Barrier(MPI_COMM_WORLD);
        double started = now();
        for (int s = 0; s < steps; s++) {
            int global = s < steps - 1 ? batch : SAMPLES - (steps - 1) * batch;
            int b = (int)((long)(rank + 1) * global / ranks - (long)rank * global / ranks);
            if (cursor + b > shard) cursor = 0;
            const float *x = images + cursor * PIXELS;
            cursor += b;
            double t0 = now();
            if (b > 0 && !cnn) {
                gemm(0, 0, b, HIDDEN, PIXELS, x, w1, hidden);                // hidden = x w1
                gemm(0, 0, b, CLASSES, HIDDEN, hidden, w2, logits);          // logits = hidden w2
                gemm(1, 0, HIDDEN, CLASSES, b, hidden, dlogits, dense2_grad); // dw2 = hidden^T dlogits
                gemm(0, 1, b, HIDDEN, CLASSES, dlogits, w2, dhidden);        // dhidden = dlogits w2^T
                gemm(1, 0, PIXELS, HIDDEN, b, x, dhidden, dense1_grad);      // dw1 = x^T dhidden
            } else if (b > 0) {
                for (int n = 0; n < b; n++) {  // im2col: one row of 9 per 3x3 field of the 28x28 image
                    const float *image = x + (long)n * PIXELS;
                    float *row = cols + (long)n * POSITIONS * FIELD;
                    for (int oy = 0; oy < 26; oy++)
                        for (int ox = 0; ox < 26; ox++, row += FIELD)
                            for (int ky = 0; ky < 3; ky++)
                                for (int kx = 0; kx < 3; kx++) row[ky * 3 + kx] = image[(oy + ky) * 28 + ox + kx];
                }
                int rows = b * POSITIONS;
                gemm(0, 0, rows, FILTERS, FIELD, cols, wc, conv);                // convolution
                gemm(0, 0, b, HIDDEN, POOLED, pooled, w1, hidden);               // dense 1
                gemm(0, 0, b, CLASSES, HIDDEN, hidden, w2, logits);              // dense 2
                gemm(1, 0, HIDDEN, CLASSES, b, hidden, dlogits, dense2_grad);    // dw2
                gemm(0, 1, b, HIDDEN, CLASSES, dlogits, w2, dhidden);            // dhidden
                gemm(1, 0, POOLED, HIDDEN, b, pooled, dhidden, dense1_grad);     // dw1
                gemm(0, 1, b, POOLED, HIDDEN, dhidden, w1, dpooled);             // dpooled (towards the convolution)
                gemm(1, 0, FIELD, FILTERS, rows, cols, dconv, conv_grad);        // dwc
            }
            double t1 = now();
            if (allreduce && ranks > 1) MPI_Allreduce(MPI_IN_PLACE, grad, (int)gradients, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (e >= 0) {
                compute[timed] = t1 - t0;
                reduce[timed] = now() - t1;
                timed++;
            }
        }
        double seconds = now() - started;
        MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (e >= 0) epoch_s[e] = seconds;
    }
    if (rank == 0) {
        double *sorted = malloc((size_t)epochs * sizeof(double));
        memcpy(sorted, epoch_s, (size_t)epochs * sizeof(double));
        double epoch_median = median(sorted, epochs);
        printf("{\"program\":\"floor\",\"model\":\"%s\",\"global_batch\":%d,\"ranks\":%d,\"blas_threads\":%d,\"allreduce\":%s,"
               "\"gradient_floats\":%ld,\"steps_per_epoch\":%d,\"epoch_s\":[",
               model, batch, ranks, openblas_get_num_threads(), allreduce && ranks > 1 ? "true" : "false", gradients, steps);
        for (int e = 0; e < epochs; e++) printf("%s%.4f", e ? "," : "", epoch_s[e]);
        printf("],\"epoch_s_median\":%.4f,\"epoch_s_min\":%.4f,\"epoch_s_max\":%.4f,\"step_compute_us_median\":%.1f,"
               "\"step_allreduce_us_median\":%.1f}\n",
               epoch_median, sorted[0], sorted[epochs - 1], median(compute, timed) * 1e6, median(reduce, timed) * 1e6);
        free(sorted);
    }
    MPI_Finalize();
    return 0;
}
