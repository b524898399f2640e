// uds-pingpong: the floor under every RPC figure. A raw Unix-socket echo, no HTTP/2, no gRPC.
//
//   uds-pingpong serve  --socket PATH
//       one thread, epoll; echoes every byte it reads on every connection.
//   uds-pingpong client --socket PATH -c CONNECTIONS -m IN_FLIGHT -n TOTAL [--size BYTES] [--log FILE]
//       one thread per connection; each keeps IN_FLIGHT messages of BYTES outstanding and sends a
//       new one as each echo returns. Prints "requests=N seconds=S" and, with --log, writes one
//       round-trip time in microseconds per line (the same figure h2load logs per request).
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *path) {
    fprintf(stderr, "uds-pingpong: %s %s: %s\n", what, path ? path : "", strerror(errno));
    exit(1);
}

static struct sockaddr_un address(const char *path) {
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "uds-pingpong: socket path too long: %s\n", path);
        exit(2);
    }
    strcpy(sa.sun_path, path);
    return sa;
}

static _Noreturn void serve(const char *path) {
    struct sockaddr_un sa = address(path);
    unlink(path);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket", path);
    if (bind(listener, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind", path);
    if (listen(listener, 128) < 0) die("listen", path);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    static char buffer[65536];
    struct epoll_event events[64];
    for (;;) {
        int n = epoll_wait(ep, events, 64, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait", path);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int c;
                while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            for (;;) {
                ssize_t r = read(fd, buffer, sizeof buffer);
                if (r > 0) {
                    ssize_t done = 0;
                    while (done < r) {  // echo everything; the client never has more than its window out
                        ssize_t w = write(fd, buffer + done, (size_t)(r - done));
                        if (w > 0) done += w;
                        else if (w < 0 && errno == EAGAIN) continue;
                        else break;
                    }
                    if (done < r) { close(fd); break; }
                    continue;
                }
                if (r < 0 && errno == EAGAIN) break;
                if (r < 0 && errno == EINTR) continue;
                close(fd);  // EOF or error; closing removes it from the epoll set
                break;
            }
        }
    }
}

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct worker {
    const char *path;
    int in_flight, size;
    long total;
    uint32_t *rtt_us;  // one entry per completed round trip
};

static void *client_worker(void *arg) {
    struct worker *w = arg;
    struct sockaddr_un sa = address(w->path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect", w->path);
    char *message = calloc(1, (size_t)w->size);
    char *incoming = malloc(65536);
    uint64_t *sent_at = calloc((size_t)w->in_flight, sizeof(uint64_t));  // FIFO ring of send times
    long sent = 0, received = 0;
    int head = 0, tail = 0;
    size_t partial = 0;
    int initial = w->total < w->in_flight ? (int)w->total : w->in_flight;
    for (int i = 0; i < initial; i++) {
        sent_at[tail] = now_ns();
        tail = (tail + 1) % w->in_flight;
        if (write(fd, message, (size_t)w->size) != w->size) die("write", w->path);
        sent++;
    }
    while (received < w->total) {
        ssize_t r = read(fd, incoming, 65536);
        if (r <= 0) die("read", w->path);
        partial += (size_t)r;
        while (partial >= (size_t)w->size) {
            partial -= (size_t)w->size;
            uint64_t t = now_ns();
            w->rtt_us[received++] = (uint32_t)((t - sent_at[head]) / 1000);
            head = (head + 1) % w->in_flight;
            if (sent < w->total) {
                sent_at[tail] = now_ns();
                tail = (tail + 1) % w->in_flight;
                if (write(fd, message, (size_t)w->size) != w->size) die("write", w->path);
                sent++;
            }
        }
    }
    close(fd);
    free(message); free(incoming); free(sent_at);
    return NULL;
}

static int client(const char *path, int connections, int in_flight, long total, int size, const char *log) {
    pthread_t threads[256];
    struct worker workers[256];
    if (connections < 1 || connections > 256 || in_flight < 1 || total < connections || size < 1) {
        fprintf(stderr, "uds-pingpong: need 1 <= -c <= 256, -m >= 1, -n >= -c, --size >= 1\n");
        return 2;
    }
    uint64_t start = now_ns();
    for (int i = 0; i < connections; i++) {
        long share = total / connections + (i < total % connections ? 1 : 0);
        workers[i] = (struct worker){path, in_flight, size, share, calloc((size_t)share, sizeof(uint32_t))};
        pthread_create(&threads[i], NULL, client_worker, &workers[i]);
    }
    for (int i = 0; i < connections; i++) pthread_join(threads[i], NULL);
    double seconds = (double)(now_ns() - start) / 1e9;
    printf("requests=%ld seconds=%.6f req_per_s=%.1f\n", total, seconds, (double)total / seconds);
    if (log) {
        FILE *f = fopen(log, "w");
        if (!f) die("open", log);
        for (int i = 0; i < connections; i++)
            for (long j = 0; j < workers[i].total; j++) fprintf(f, "%u\n", workers[i].rtt_us[j]);
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *log = NULL;
    int connections = 1, in_flight = 1, size = 64;
    long total = 10000;
    if (argc < 2) goto usage;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) goto usage;
        if (!strcmp(a, "--socket")) path = v;
        else if (!strcmp(a, "-c")) connections = atoi(v);
        else if (!strcmp(a, "-m")) in_flight = atoi(v);
        else if (!strcmp(a, "-n")) total = atol(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--log")) log = v;
        else goto usage;
        i++;
    }
    if (!path) goto usage;
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "serve")) serve(path);
    if (!strcmp(argv[1], "client")) return client(path, connections, in_flight, total, size, log);
usage:
    fprintf(stderr, "usage: uds-pingpong serve --socket PATH\n"
                    "       uds-pingpong client --socket PATH [-c N] [-m N] [-n N] [--size BYTES] [--log FILE]\n");
    return 2;
}
