/*
 * STREAM-style memory bandwidth for scripts/bench: triad (a = b + s*c) and a read-only sum,
 * with a fixed number of threads, each thread on its own contiguous slice (first-touch
 * initialised by that thread, so pages sit where the thread runs).
 *
 *   cc -O3 -march=native -pthread stream.c -o stream
 *   stream THREADS ARRAY_MIB REPS
 *
 * Prints one JSON object: the best and every rep's GB/s (1 GB = 1e9 bytes) of each kernel.
 * Triad counts 3 arrays moved per element (24 bytes), as STREAM does (no write-allocate
 * traffic); read counts 8 bytes per element. Read-only is what decoding does with weights.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { MAX_THREADS = 256, MAX_REPS = 1000 };

typedef double v4d __attribute__((vector_size(32)));

struct shared {
    double *a, *b, *c;
    size_t n;
    int threads, reps;
    pthread_barrier_t barrier;
    double sums[MAX_THREADS];
    double triad_s[MAX_REPS], read_s[MAX_REPS];
};

struct worker {
    struct shared *sh;
    int id;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run(void *arg) {
    struct worker *w = arg;
    struct shared *sh = w->sh;
    size_t lo = sh->n * (size_t)w->id / (size_t)sh->threads;
    size_t hi = sh->n * (size_t)(w->id + 1) / (size_t)sh->threads;
    double *restrict a = sh->a, *restrict b = sh->b, *restrict c = sh->c;
    for (size_t i = lo; i < hi; i++) {
        a[i] = 0.0;
        b[i] = 1.0;
        c[i] = 2.0;
    }
    const double s = 3.0;
    for (int r = 0; r < sh->reps; r++) {
        double t0 = 0.0;
        pthread_barrier_wait(&sh->barrier);
        if (w->id == 0) t0 = now();
        for (size_t i = lo; i < hi; i++) a[i] = b[i] + s * c[i];
        pthread_barrier_wait(&sh->barrier);
        if (w->id == 0) {
            sh->triad_s[r] = now() - t0;
            t0 = now();
        }
        pthread_barrier_wait(&sh->barrier);
        /* Four independent vector sums, so neither the adds' latency nor scalar code bounds
         * the loop (C's strict FP order forbids the compiler to vectorise a plain sum). */
        v4d p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0}, x;
        size_t i = lo;
        for (; i + 16 <= hi; i += 16) {
            __builtin_memcpy(&x, a + i, sizeof x), p0 += x;
            __builtin_memcpy(&x, a + i + 4, sizeof x), p1 += x;
            __builtin_memcpy(&x, a + i + 8, sizeof x), p2 += x;
            __builtin_memcpy(&x, a + i + 12, sizeof x), p3 += x;
        }
        p0 += p1 + p2 + p3;
        double sum = p0[0] + p0[1] + p0[2] + p0[3];
        for (; i < hi; i++) sum += a[i];
        sh->sums[w->id] += sum;
        pthread_barrier_wait(&sh->barrier);
        if (w->id == 0) sh->read_s[r] = now() - t0;
    }
    return NULL;
}

static void print_kernel(const char *name, const double *secs, int reps, double bytes) {
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        double g = bytes / secs[r] / 1e9;
        if (g > best) best = g;
    }
    printf("\"%s_gbs_best\":%.3f,\"%s_gbs\":[", name, best, name);
    for (int r = 0; r < reps; r++) printf("%s%.3f", r ? "," : "", bytes / secs[r] / 1e9);
    printf("]");
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS ARRAY_MIB REPS\n", argv[0]);
        return 2;
    }
    static struct shared sh;
    sh.threads = atoi(argv[1]);
    long mib = atol(argv[2]);
    sh.reps = atoi(argv[3]);
    if (sh.threads < 1 || sh.threads > MAX_THREADS || mib < 1 || sh.reps < 1 || sh.reps > MAX_REPS) {
        fprintf(stderr, "stream: threads 1..%d, array MiB >= 1, reps 1..%d\n", MAX_THREADS, MAX_REPS);
        return 2;
    }
    sh.n = (size_t)mib * 1024 * 1024 / sizeof(double);
    sh.a = aligned_alloc(64, sh.n * sizeof(double));
    sh.b = aligned_alloc(64, sh.n * sizeof(double));
    sh.c = aligned_alloc(64, sh.n * sizeof(double));
    if (!sh.a || !sh.b || !sh.c) {
        fprintf(stderr, "stream: cannot allocate 3 x %ld MiB\n", mib);
        return 1;
    }
    pthread_barrier_init(&sh.barrier, NULL, (unsigned)sh.threads);
    pthread_t tid[MAX_THREADS];
    struct worker ws[MAX_THREADS];
    for (int t = 0; t < sh.threads; t++) {
        ws[t] = (struct worker){&sh, t};
        if (pthread_create(&tid[t], NULL, run, &ws[t]) != 0) {
            fprintf(stderr, "stream: cannot start thread %d\n", t);
            return 1;
        }
    }
    for (int t = 0; t < sh.threads; t++) pthread_join(tid[t], NULL);
    double check = 0.0;
    for (int t = 0; t < sh.threads; t++) check += sh.sums[t];
    if (check != 7.0 * (double)sh.n * sh.reps) {
        fprintf(stderr, "stream: wrong checksum %.1f\n", check);
        return 1;
    }
    printf("{\"threads\":%d,\"array_mib\":%ld,\"reps\":%d,", sh.threads, mib, sh.reps);
    print_kernel("triad", sh.triad_s, sh.reps, 3.0 * sizeof(double) * (double)sh.n);
    printf(",");
    print_kernel("read", sh.read_s, sh.reps, (double)sizeof(double) * (double)sh.n);
    printf("}\n");
    return 0;
}
