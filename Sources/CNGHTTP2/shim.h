#ifndef CNGHTTP2_SHIM_H
#define CNGHTTP2_SHIM_H
/* The one place the package includes libnghttp2. Macros Swift cannot see are
   wrapped here as static inline functions. H2's event loop also takes the Linux
   epoll and eventfd declarations from here (Glibc's module does not export them). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <nghttp2/nghttp2.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

static inline int h2_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}

/* Waits into `events` (an array of `max` struct epoll_event, allocated by h2_epoll_events_allocate). */
static inline int h2_epoll_wait(int epfd, void *events, int max, int timeout) {
    return epoll_wait(epfd, (struct epoll_event *)events, max, timeout);
}
static inline uint32_t h2_epoll_event_mask(const void *events, int i) {
    return ((const struct epoll_event *)events)[i].events;
}
static inline uint64_t h2_epoll_event_token(const void *events, int i) {
    return ((const struct epoll_event *)events)[i].data.u64;
}
static inline size_t h2_epoll_event_size(void) { return sizeof(struct epoll_event); }

static inline const uint32_t h2_epollin(void) { return EPOLLIN; }
static inline const uint32_t h2_epollout(void) { return EPOLLOUT; }
static inline const uint32_t h2_epollhup(void) { return EPOLLHUP | EPOLLERR | EPOLLRDHUP; }
static inline int h2_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
/* SO_PEERCRED: returns 0 and fills the three values, or -1 with errno set. */
static inline int h2_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid; *uid = cred.uid; *gid = cred.gid;
    return 0;
}
static inline int h2_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }
static inline void h2_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
static inline int h2_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
#endif
