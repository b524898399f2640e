#define _GNU_SOURCE
#include "ch2sys.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

int h2_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int h2_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = token;
    return epoll_ctl(epfd, op, fd, &ev);
}

int h2_epoll_wait(int epfd, void *events, int max, int timeout) {
    return epoll_wait(epfd, (struct epoll_event *)events, max, timeout);
}

uint32_t h2_epoll_event_mask(const void *events, int i) {
    return ((const struct epoll_event *)events)[i].events;
}

uint64_t h2_epoll_event_token(const void *events, int i) {
    return ((const struct epoll_event *)events)[i].data.u64;
}

size_t h2_epoll_event_size(void) { return sizeof(struct epoll_event); }
uint32_t h2_epollin(void) { return EPOLLIN; }
uint32_t h2_epollout(void) { return EPOLLOUT; }
uint32_t h2_epollhup(void) { return EPOLLHUP | EPOLLERR | EPOLLRDHUP; }
int h2_epoll_ctl_add(void) { return EPOLL_CTL_ADD; }
int h2_epoll_ctl_mod(void) { return EPOLL_CTL_MOD; }
int h2_epoll_ctl_del(void) { return EPOLL_CTL_DEL; }
int h2_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int h2_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int h2_accept(int fd) { return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }
