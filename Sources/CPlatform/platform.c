#define _GNU_SOURCE
#include "cplatform.h"
#include <pthread.h>
#include <malloc.h>

void platform_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

void platform_malloc_trim(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void platform_limit_malloc_arenas(int count) {
#ifdef __GLIBC__
    mallopt(M_ARENA_MAX, count);
#endif
}
