/* Test helper: bind, listen and accept on 127.0.0.1 through io_uring only (raw io_uring_setup
 * and io_uring_enter, no liburing; never bind(2), listen(2) or accept(2)), then a second bind
 * of the same port that fails with EADDRINUSE.
 * Usage: uring_listen [inline|sqpoll|async]
 *   inline: the submitting thread runs the requests; sqpoll: the ring's SQPOLL thread submits
 *   them; async: IOSQE_ASYNC hands each to an io_uring worker thread.
 * Prints "PORT <port> io_uring" once listening, "ACCEPT <fd>" after one connection, "BIND2 <res>"
 * after the second bind, then waits for stdin to close. A kernel without IORING_OP_BIND (before
 * 6.11) gets bind(2) and listen(2) instead ("PORT <port> syscalls") and no second bind.
 * Exits 1-9 on a setup failure. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define OP_ACCEPT 13
#define OP_BIND 56
#define OP_LISTEN 57

static int ring;
static unsigned *sq_tail, *sq_mask, *sq_array, *sq_flags, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static unsigned sqe_flags;
static int sqpoll;

static void setup(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    if (sqpoll) {
        p.flags = IORING_SETUP_SQPOLL;
        p.sq_thread_idle = 2000;
    }
    ring = syscall(__NR_io_uring_setup, 8, &p);
    if (ring < 0) exit(1);
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring,
                    IORING_OFF_CQ_RING);
    sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) exit(2);
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    sq_flags = (unsigned *)(sq + p.sq_off.flags);
    cq_head = (unsigned *)(cq + p.cq_off.head);
    cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

/* Submits one request and returns its result. */
static int run(unsigned char op, int fd, unsigned long addr, unsigned long addr2, unsigned len) {
    unsigned tail = *sq_tail, idx = tail & *sq_mask;
    struct io_uring_sqe *e = &sqes[idx];
    memset(e, 0, sizeof *e);
    e->opcode = op;
    e->flags = sqe_flags;
    e->fd = fd;
    e->addr = addr;
    e->addr2 = addr2;
    e->len = len;
    sq_array[idx] = idx;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    unsigned enter = IORING_ENTER_GETEVENTS;
    if (sqpoll && (__atomic_load_n(sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_NEED_WAKEUP))
        enter |= IORING_ENTER_SQ_WAKEUP;
    for (;;) {
        unsigned head = *cq_head;
        if (head != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
            int res = cqes[head & *cq_mask].res;
            __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
            return res;
        }
        if (syscall(__NR_io_uring_enter, ring, sqpoll ? 0 : 1, 1, enter, NULL, 0) < 0) exit(3);
        enter = IORING_ENTER_GETEVENTS;
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "inline";
    sqpoll = strcmp(mode, "sqpoll") == 0;
    if (strcmp(mode, "async") == 0) sqe_flags = IOSQE_ASYNC;
    setup();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) exit(4);
    int res = run(OP_BIND, s, (unsigned long)&a, sizeof a, 0);
    int uring_bind = res != -EINVAL;
    if (!uring_bind) {
        if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 7) != 0) exit(5);
    } else if (res != 0) {
        fprintf(stderr, "io_uring bind: %s\n", strerror(-res));
        exit(5);
    } else if ((res = run(OP_LISTEN, s, 0, 0, 7)) != 0) {
        fprintf(stderr, "io_uring listen: %s\n", strerror(-res));
        exit(6);
    }
    socklen_t alen = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &alen);
    printf("PORT %d %s\n", ntohs(a.sin_port), uring_bind ? "io_uring" : "syscalls");
    fflush(stdout);
    printf("ACCEPT %d\n", run(OP_ACCEPT, s, 0, 0, 0));
    fflush(stdout);
    if (uring_bind) {
        int t = socket(AF_INET, SOCK_STREAM, 0);
        if (t < 0) exit(7);
        printf("BIND2 %d\n", run(OP_BIND, t, (unsigned long)&a, sizeof a, 0));
        fflush(stdout);
    }
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
}
