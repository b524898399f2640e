#ifndef CLVM2CMD_SHIM_H
#define CLVM2CMD_SHIM_H
/* The one place the package includes liblvm2cmd (Debian liblvm2-dev). */
#include <lvm2cmd.h>
/* mallopt and malloc_trim: the Glibc module leaves <malloc.h> out. */
#include <malloc.h>
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
    const char *error;
};

/* The loaded library's functions; `error` is set (dlerror text) when it could not be loaded. */
static inline const struct clvm2_api *clvm2_load(void) {
    static struct clvm2_api api;
    static int tried;
    if (tried) return &api;
    tried = 1;
    void *lib = dlopen("liblvm2cmd.so.2.03", RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) lib = dlopen("liblvm2cmd.so", RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) {
        api.error = dlerror();
        return &api;
    }
    api.initialize = (void *(*)(void))dlsym(lib, "lvm2_init");
    api.run = (int (*)(void *, const char *))dlsym(lib, "lvm2_run");
    api.log_fn = (void (*)(lvm2_log_fn_t))dlsym(lib, "lvm2_log_fn");
    api.log_level = (void (*)(void *, int))dlsym(lib, "lvm2_log_level");
    if (!api.initialize || !api.run || !api.log_fn || !api.log_level) {
        api.initialize = NULL;
        api.error = "liblvm2cmd lacks lvm2_init, lvm2_run, lvm2_log_fn or lvm2_log_level";
    }
    return &api;
}
#endif
