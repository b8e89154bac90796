/* Test helper: hold a listening TCP socket and a bound UDP socket on loopback until killed.
 * Usage: hold_sockets [TCP_PORT]  (with a port, the TCP socket uses SO_REUSEPORT to share it).
 * With PW_COMM in the environment, first takes it as command name (prctl PR_SET_NAME: any
 * bytes, cut by the kernel at 15). Prints "TCP_PORT UDP_PORT" once both are ready. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int open_bound(int type, int port) {
    int s = socket(AF_INET, type, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0) exit(1);
    if (port && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) exit(2);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) exit(3);
    return s;
}

static int port_of(int s) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

int main(int argc, char **argv) {
    const char *comm = getenv("PW_COMM");
    if (comm && prctl(PR_SET_NAME, comm, 0, 0, 0) != 0) return 5;
    int tcp = open_bound(SOCK_STREAM, argc > 1 ? atoi(argv[1]) : 0);
    int udp = open_bound(SOCK_DGRAM, 0);
    if (listen(tcp, 8) != 0) return 4;
    printf("%d %d\n", port_of(tcp), port_of(udp));
    fflush(stdout);
    for (;;) pause();
}
