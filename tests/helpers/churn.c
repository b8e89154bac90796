/* Test helper: a flood of listener births, as an attacker hiding a listener would make one.
 * Usage: churn SECONDS. Each round: a TCP socket bound to 127.0.0.1:0, listening, closed, then
 * a UDP socket bound to 127.0.0.1:0 and closed. Prints "ready" after the first round and the
 * number of operations (binds and listens) when the time is up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int bound(int type) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, type, 0);
    if (s < 0) exit(1);
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0) exit(2);
    return s;
}

int main(int argc, char **argv) {
    double end = now() + (argc > 1 ? atof(argv[1]) : 1.0);
    unsigned long ops = 0;
    for (unsigned long round = 0; now() < end; round++) {
        int tcp = bound(SOCK_STREAM);
        if (listen(tcp, 1) != 0) return 3;
        close(tcp);
        close(bound(SOCK_DGRAM));
        ops += 3;
        if (round == 0) {
            printf("ready\n");
            fflush(stdout);
        }
    }
    printf("%lu\n", ops);
    return 0;
}
