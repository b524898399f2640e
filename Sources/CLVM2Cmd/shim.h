#ifndef CLVM2CMD_SHIM_H
#define CLVM2CMD_SHIM_H
/* The one place the package includes liblvm2cmd (Debian liblvm2-dev). */
#include <lvm2cmd.h>
#include <dlfcn.h>
#include <stddef.h>

/* liblvm2cmd is loaded on first use (dlopen), not linked: it brings ~15 libraries
 * (libdevmapper, libsystemd, libgcrypt, libstdc++, ...) that a process serving the loop file
 * backend, or the registrar, never needs. Call these from one thread at a time. */
struct clvm2_api {
    void *(*initialize)(void);
    int (*run)(void *, const char *);
    void (*log_fn)(lvm2_log_fn_t);
    void (*log_level)(void *, int);
    void (*exit)(void *);
    const char *error;
};

/* What is loaded: the functions, whether loading was tried, the dlopen handle. */
struct clvm2_state {
    struct clvm2_api api;
    int tried;
    void *library;
};

static inline struct clvm2_state *clvm2_state(void) {
    static struct clvm2_state state;
    return &state;
}

/* The loaded library's functions; `error` is set (dlerror text) when it could not be loaded. */
static inline const struct clvm2_api *clvm2_load(void) {
    struct clvm2_state *state = clvm2_state();
    struct clvm2_api *api = &state->api;
    if (state->tried) return api;
    state->tried = 1;
    void *lib = dlopen("liblvm2cmd.so.2.03", RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) lib = dlopen("liblvm2cmd.so", RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) {
        api->error = dlerror();
        return api;
    }
    state->library = lib;
    api->initialize = (void *(*)(void))dlsym(lib, "lvm2_init");
    api->run = (int (*)(void *, const char *))dlsym(lib, "lvm2_run");
    api->log_fn = (void (*)(lvm2_log_fn_t))dlsym(lib, "lvm2_log_fn");
    api->log_level = (void (*)(void *, int))dlsym(lib, "lvm2_log_level");
    api->exit = (void (*)(void *))dlsym(lib, "lvm2_exit");
    if (!api->initialize || !api->run || !api->log_fn || !api->log_level || !api->exit) {
        api->initialize = NULL;
        api->error = "liblvm2cmd lacks lvm2_init, lvm2_run, lvm2_log_fn, lvm2_log_level or lvm2_exit";
    }
    return api;
}

/* Unloads the library (after lvm2_exit on every handle) so its pages and those of the libraries
 * it brought leave the process; the next clvm2_load loads it again. */
static inline void clvm2_unload(void) {
    struct clvm2_state *state = clvm2_state();
    if (state->library != NULL) dlclose(state->library);
    struct clvm2_state empty = {0};
    *state = empty;
}
#endif
