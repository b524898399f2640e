#ifndef CPLATFORM_H
#define CPLATFORM_H
/* What Platform needs from glibc that Swift's Glibc module leaves out: <malloc.h> (mallopt,
   malloc_trim) and pthread_setname_np, a GNU extension. The GNU feature macro stays inside
   platform.c so that no system header is compiled twice with different settings. */

/* Names the calling thread (the kernel keeps 15 bytes). */
void platform_set_thread_name(const char *name);
/* Returns freed heap memory to the kernel (glibc malloc_trim; a no-op elsewhere). */
void platform_malloc_trim(void);
/* Caps glibc's malloc arenas at `count` (mallopt M_ARENA_MAX; a no-op elsewhere). */
void platform_limit_malloc_arenas(int count);
#endif
