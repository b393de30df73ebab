/*
 * zkbench: the reference figure for `zkutil bench raw`, measured by a plain C program over
 * the same static libzookeeper_mt.a zkutil links. It times sequential create+delete pairs
 * (one round trip at a time), as `zkutil bench raw` does, so the two can be compared.
 *
 * Build (one line, from the repository root; Debian's libzookeeper-mt-dev):
 *   cc -O2 -o target/zkbench tools/zkbench.c -I/usr/include/zookeeper \
 *      /usr/lib/$(gcc -print-multiarch)/libzookeeper_mt.a -lpthread
 * Run:
 *   target/zkbench [HOSTS [PAIRS]]        (default 127.0.0.1:2181, 2000 pairs)
 */
#define THREADED /* the synchronous API of libzookeeper_mt */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int connected = 0;

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx) {
    (void)zh; (void)path; (void)ctx;
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
        pthread_mutex_lock(&mu);
        connected = 1;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *hosts = argc > 1 ? argv[1] : "127.0.0.1:2181";
    int pairs = argc > 2 ? atoi(argv[2]) : 2000;
    if (pairs <= 0) {
        fprintf(stderr, "zkbench: PAIRS must be a positive number\n");
        return 2;
    }
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    zhandle_t *zh = zookeeper_init(hosts, watcher, 10000, NULL, NULL, 0);
    if (!zh) {
        perror("zkbench: zookeeper_init");
        return 1;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&mu);
    while (!connected && pthread_cond_timedwait(&cv, &mu, &deadline) == 0) {
    }
    int ok = connected;
    pthread_mutex_unlock(&mu);
    if (!ok) {
        fprintf(stderr, "zkbench: no session with %s within 10s\n", hosts);
        zookeeper_close(zh);
        return 1;
    }
    char path[64];
    snprintf(path, sizeof path, "/zkbench-%d", (int)getpid());
    double t0 = now();
    for (int i = 0; i < pairs; i++) {
        int rc = zoo_create(zh, path, "x", 1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
        if (rc == ZOK) rc = zoo_delete(zh, path, -1);
        if (rc != ZOK) {
            fprintf(stderr, "zkbench: %s: %s\n", path, zerror(rc));
            zookeeper_close(zh);
            return 1;
        }
    }
    double dt = now() - t0;
    printf("server:                 %s\n", hosts);
    printf("sequential create+delete: %9.0f pairs/s   (%d pairs, one round trip at a time; C client)\n",
           pairs / dt, pairs);
    zookeeper_close(zh);
    return 0;
}
