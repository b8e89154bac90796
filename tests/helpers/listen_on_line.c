/* Test helper: wait for a line on stdin, then listen on 127.0.0.1:PORT and hold it until
 * killed. Usage: listen_on_line PORT. Prints "listening" once it is. Lets a test change the
 * world between the exec and the listen (the FUSE test makes its server stop answering). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char line[16];
    if (argc < 2 || !fgets(line, sizeof line, stdin)) return 1;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return 2;
    if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 1) != 0) return 3;
    printf("listening\n");
    fflush(stdout);
    for (;;) pause();
}
