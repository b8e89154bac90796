/* Test helper: wait for a line on stdin, then bind N UDP sockets to ephemeral loopback ports
 * (closing each), as fast as possible, then exit.  Usage: bind_burst N */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0;
    char go[8];
    if (!fgets(go, sizeof go, stdin)) return 2;
    for (int i = 0; i < n; i++) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
        close(s);
    }
    return 0;
}
