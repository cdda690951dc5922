// What a bf16 gradient wire format would buy on this machine: one allreduce of N floats as
// float32 (MPI_SUM) against the same values rounded to bf16 (round to nearest even), summed by
// a user MPI_Op in bf16, and widened back, conversions included. Medians of 300; prints figures.
//
//   mpicc -O3 -march=native Launch/bf16_allreduce.c -o /tmp/bf16_allreduce
//   Launch/mpirun.sh 2 /tmp/bf16_allreduce 694178    # the CNN's gradient (+ 2 statistics)
//   Launch/mpirun.sh 2 /tmp/bf16_allreduce 101772    # the MLP's
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { repeats = 300 };

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);  // round to nearest, ties to even (NaN handling left out)
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void bf16_sum(void *in, void *inout, int *len, MPI_Datatype *type) {
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = to_bf16(from_bf16(a[i]) + from_bf16(b[i]));
}

static int ascending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t) {
    qsort(t, repeats, sizeof(double), ascending);
    return t[repeats / 2];
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    int n = argc > 1 ? atoi(argv[1]) : 0;
    if (n <= 0) {
        if (rank == 0) fprintf(stderr, "usage: bf16_allreduce FLOATS (a positive count, e.g. 694178)\n");
        MPI_Finalize();
        return 2;
    }
    float *g = malloc((size_t)n * sizeof(float));
    uint16_t *h = malloc((size_t)n * sizeof(uint16_t));
    for (int i = 0; i < n; i++) g[i] = (float)((i * 7919 + rank) % 1000) * 1e-4f;
    MPI_Op sum;
    MPI_Op_create(bf16_sum, 1, &sum);
    double wide[repeats], narrow[repeats], conversions[repeats];
    for (int r = 0; r < repeats; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        wide[r] = MPI_Wtime() - t0;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        for (int i = 0; i < n; i++) h[i] = to_bf16(g[i]);
        double t1 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, h, n, MPI_UINT16_T, sum, MPI_COMM_WORLD);
        double t2 = MPI_Wtime();
        for (int i = 0; i < n; i++) g[i] = from_bf16(h[i]) * 0.5f;  // keeps the values bounded
        narrow[r] = MPI_Wtime() - t0;
        conversions[r] = (t1 - t0) + (MPI_Wtime() - t2);
    }
    double w = median(wide), b = median(narrow), c = median(conversions);
    if (rank == 0)
        printf("%d floats: float32 allreduce %.3f ms; bf16 %.3f ms, of which conversions %.3f ms (medians of %d)\n",
               n, w * 1e3, b * 1e3, c * 1e3, repeats);
    MPI_Op_free(&sum);
    free(g);
    free(h);
    MPI_Finalize();
    return 0;
}
