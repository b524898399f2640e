/* lvm2cmd-exec: a stand-in for liblvm2cmd that runs every command through the `lvm` executable,
 * or forwards it to the real library, logging each command's time either way.
 *
 * csi-lvm-driver loads liblvm2cmd with dlopen("liblvm2cmd.so.2.03"). Built as a library of that
 * name and found first through LD_LIBRARY_PATH, this file gives the same driver binary, unchanged,
 * one of two LVM layers:
 *
 *   exec     (default) each lvm2_run() is one `lvm WORDS...` process (posix_spawn, stdout and
 *            stderr read through pipes, waitpid), the way drivers that shell out to LVM work;
 *   forward  (LVM2CMD_FORWARD=/path/to/the/real/liblvm2cmd.so.2.03) every call goes to the real
 *            library, loaded with lvm2_init's first need and unloaded by lvm2_exit, as the driver
 *            does with it directly; the only addition is the log line below.
 *
 * Everything else the driver does (gRPC, state cache, mkfs, mount(2)) stays the same, so a
 * benchmark can compare the two LVM paths inside one product path (Benchmarks/LVM/vm-cycle.py).
 *
 *   gcc -O2 -shared -fPIC -o DIR/liblvm2cmd.so.2.03 lvm2cmd-exec.c -ldl
 *   LD_LIBRARY_PATH=DIR csi-lvm-driver ...
 *
 * In exec mode each child gets the LVM_SYSTEM_DIR that was set when lvm2_init ran (the driver sets
 * it to its private configuration only around that call), so both paths read the same lvm.conf.
 * Report lines (stdout) reach the log callback at LVM2_LOG_PRINT, stderr lines at LVM2_LOG_ERROR;
 * the return value is liblvm2cmd's (1 on success, else the executable's exit status).
 *
 * Environment: LVM2CMD_EXEC_LVM (the executable; default /sbin/lvm, then /usr/sbin/lvm);
 * LVM2CMD_LOG (a file to which each command's microseconds, return value and line are appended,
 * after the command's time is taken: the benchmark's record of which commands ran).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <lvm2cmd.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static lvm2_log_fn_t log_callback;

struct handle {
    void *real;       /* forward mode: the real library's handle */
    char *executable;
    char *system_dir; /* LVM_SYSTEM_DIR at lvm2_init, or NULL */
};

/* Forward mode: the real library and its functions, loaded by lvm2_init, unloaded by lvm2_exit. */
static struct {
    void *library;
    void *(*init)(void);
    int (*run)(void *, const char *);
    void (*log_fn)(lvm2_log_fn_t);
    void (*log_level)(void *, int);
    void (*exit)(void *);
} real;

static int forwarding(void) { return getenv("LVM2CMD_FORWARD") != NULL; }

static int load_real(void) {
    if (real.library) return 1;
    real.library = dlopen(getenv("LVM2CMD_FORWARD"), RTLD_NOW | RTLD_LOCAL);
    if (!real.library) return 0;
    real.init = (void *(*)(void))dlsym(real.library, "lvm2_init");
    real.run = (int (*)(void *, const char *))dlsym(real.library, "lvm2_run");
    real.log_fn = (void (*)(lvm2_log_fn_t))dlsym(real.library, "lvm2_log_fn");
    real.log_level = (void (*)(void *, int))dlsym(real.library, "lvm2_log_level");
    real.exit = (void (*)(void *))dlsym(real.library, "lvm2_exit");
    if (real.init && real.run && real.log_fn && real.log_level && real.exit) return 1;
    dlclose(real.library);
    real.library = NULL;
    return 0;
}

/* Appends "MICROSECONDS RC LINE" to LVM2CMD_LOG, the time counted from *t0 to now. */
static void log_command(const struct timespec *t0, int rc, const char *line) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    const char *log = getenv("LVM2CMD_LOG");
    if (log == NULL) return;
    FILE *f = fopen(log, "ae");
    if (f == NULL) return;
    long us = (t1.tv_sec - t0->tv_sec) * 1000000L + (t1.tv_nsec - t0->tv_nsec) / 1000;
    fprintf(f, "%ld %d %s\n", us, rc, line);
    fclose(f);
}

void lvm2_log_fn(lvm2_log_fn_t fn) {
    log_callback = fn;
    if (real.library) real.log_fn(fn);
}

void lvm2_log_level(void *handle, int level) {
    struct handle *h = handle;
    if (h && h->real) real.log_level(h->real, level);
}

void lvm2_disable_dmeventd_monitoring(void *handle) { (void)handle; }

/* Opening a handle is logged as the command "lvm2_init" (forward mode: loading the real library
 * and its lvm2_init, which the driver pays again after each idle release). */
static void *init(void);

void *lvm2_init(void) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    void *h = init();
    log_command(&t0, h ? LVM2_COMMAND_SUCCEEDED : LVM2_INIT_FAILED, "lvm2_init");
    return h;
}

static void *init(void) {
    struct handle *h = calloc(1, sizeof *h);
    if (h == NULL) return NULL;
    if (forwarding()) {
        if (load_real()) {
            real.log_fn(log_callback);
            h->real = real.init();
        }
        if (h->real == NULL) {
            free(h);
            return NULL;
        }
        return h;
    }
    const char *exe = getenv("LVM2CMD_EXEC_LVM");
    if (exe == NULL) exe = access("/sbin/lvm", X_OK) == 0 ? "/sbin/lvm" : "/usr/sbin/lvm";
    h->executable = strdup(exe);
    const char *dir = getenv("LVM_SYSTEM_DIR");
    h->system_dir = dir ? strdup(dir) : NULL;
    return h;
}

void *lvm2_init_threaded(void) { return lvm2_init(); }

void lvm2_exit(void *handle) {
    struct handle *h = handle;
    if (h == NULL) return;
    if (h->real) {
        real.exit(h->real);
        dlclose(real.library);
        memset(&real, 0, sizeof real);
    }
    free(h->executable);
    free(h->system_dir);
    free(h);
}

/* Output of one stream, cut into lines for the callback. */
struct stream {
    int fd;
    int level;
    char *buffer;
    size_t length, capacity;
};

static void emit(struct stream *s, int flush) {
    size_t start = 0;
    for (size_t i = 0; i < s->length; i++) {
        if (s->buffer[i] != '\n') continue;
        s->buffer[i] = 0;
        if (log_callback) log_callback(s->level, __FILE__, __LINE__, 0, s->buffer + start);
        start = i + 1;
    }
    if (flush && start < s->length) {
        if (s->length == s->capacity) s->buffer = realloc(s->buffer, ++s->capacity);
        s->buffer[s->length] = 0;
        if (log_callback) log_callback(s->level, __FILE__, __LINE__, 0, s->buffer + start);
        start = s->length;
    }
    memmove(s->buffer, s->buffer + start, s->length - start);
    s->length -= start;
}

static int drain(struct stream *s) {
    if (s->capacity - s->length < 4096) {
        s->capacity = s->capacity * 2 + 8192;
        s->buffer = realloc(s->buffer, s->capacity);
    }
    ssize_t n = read(s->fd, s->buffer + s->length, s->capacity - s->length);
    if (n < 0 && errno == EINTR) return 1;
    if (n <= 0) return 0;
    s->length += (size_t)n;
    emit(s, 0);
    return 1;
}

/* One command as an `lvm` process. */
static int exec_run(struct handle *h, const char *cmdline) {
    /* The driver's command lines are words without spaces or quotes (LVMCommand.line). */
    char *line = strdup(cmdline);
    size_t words = 2;
    for (const char *p = cmdline; *p; p++) words += (*p == ' ' || *p == '\t');
    char **argv = calloc(words + 1, sizeof *argv);
    size_t argc = 0;
    argv[argc++] = h->executable;
    for (char *save = NULL, *w = strtok_r(line, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) argv[argc++] = w;
    argv[argc] = NULL;

    size_t n = 0;
    while (environ[n]) n++;
    char **envp = calloc(n + 3, sizeof *envp);
    size_t e = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "LVM_SYSTEM_DIR=", 15) == 0 || strncmp(environ[i], "LVM_SUPPRESS_FD_WARNINGS=", 25) == 0)
            continue;
        envp[e++] = environ[i];
    }
    char *dir_entry = NULL;
    if (h->system_dir && asprintf(&dir_entry, "LVM_SYSTEM_DIR=%s", h->system_dir) > 0) envp[e++] = dir_entry;
    envp[e++] = "LVM_SUPPRESS_FD_WARNINGS=1";
    envp[e] = NULL;

    int out[2], err[2];
    int rc = LVM2_INIT_FAILED;
    if (pipe2(out, O_CLOEXEC) != 0) goto done;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]), close(out[1]);
        goto done;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    pid_t pid;
    int spawned = posix_spawn(&pid, h->executable, &actions, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]), close(err[1]);
    struct stream streams[2] = {{.fd = out[0], .level = LVM2_LOG_PRINT}, {.fd = err[0], .level = LVM2_LOG_ERROR}};
    if (spawned != 0) {
        char message[512];
        snprintf(message, sizeof message, "cannot run %s: %s", h->executable, strerror(spawned));
        if (log_callback) log_callback(LVM2_LOG_ERROR, __FILE__, __LINE__, 0, message);
    } else {
        int open_streams = 2;
        struct pollfd fds[2] = {{.fd = out[0], .events = POLLIN}, {.fd = err[0], .events = POLLIN}};
        while (open_streams > 0) {
            if (poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                break;
            }
            for (int i = 0; i < 2; i++) {
                if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                if (!drain(&streams[i])) {
                    emit(&streams[i], 1);
                    fds[i].fd = -1;
                    open_streams--;
                }
            }
        }
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (WIFEXITED(status))
            rc = WEXITSTATUS(status) == 0 ? LVM2_COMMAND_SUCCEEDED : WEXITSTATUS(status);
        else
            rc = LVM2_PROCESSING_FAILED;
    }
    close(out[0]), close(err[0]);
    free(streams[0].buffer), free(streams[1].buffer);

done:
    free(dir_entry);
    free(envp);
    free(argv);
    free(line);
    return rc;
}

int lvm2_run(void *handle, const char *cmdline) {
    struct handle *h = handle;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = h->real ? real.run(h->real, cmdline) : exec_run(h, cmdline);
    log_command(&t0, rc, cmdline);
    return rc;
}
