#ifndef CH2SYS_H
#define CH2SYS_H
/* Linux calls H2's event loop needs that Swift's Glibc module does not export
   (epoll, eventfd, accept4, SO_PEERCRED). The header uses plain
   integer types only; the GNU feature macros stay inside sys.c so that no system
   header is compiled twice with different settings. */
#include <stddef.h>
#include <stdint.h>

int h2_epoll_create(void);
int h2_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t token);
/* Waits into `events`, an array of `max` entries of h2_epoll_event_size() bytes each. */
int h2_epoll_wait(int epfd, void *events, int max, int timeout);
uint32_t h2_epoll_event_mask(const void *events, int i);
uint64_t h2_epoll_event_token(const void *events, int i);
size_t h2_epoll_event_size(void);
uint32_t h2_epollin(void);
uint32_t h2_epollout(void);
uint32_t h2_epollhup(void);
int h2_epoll_ctl_add(void);
int h2_epoll_ctl_mod(void);
int h2_epoll_ctl_del(void);
int h2_eventfd(void);
/* SO_PEERCRED: returns 0 and fills the three values, or -1 with errno set. */
int h2_peercred(int fd, int32_t *pid, uint32_t *uid, uint32_t *gid);
int h2_accept(int fd);
#endif
