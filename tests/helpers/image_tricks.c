/* Test helper: a listener that hides what it runs, as an attacker would.
 * Usage: image_tricks MODE PORT
 *   wait     waits for a line on stdin (the test deletes the executable meanwhile), then listens
 *   reexec   enters a new mount namespace and re-execs itself through /proc/self/exe (as busybox
 *            runs its applets), as `image_tricks wait PORT`
 *   rewrite  overwrites its argument area with "sshd: root@pts/0" (as perl's $0 and
 *            setproctitle do), then listens
 * Listens on 127.0.0.1:PORT, prints "ok", and waits to be killed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void listen_on(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 1) != 0) exit(2);
    printf("ok\n");
    fflush(stdout);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc < 3) return 1;
    int port = atoi(argv[2]);
    if (strcmp(argv[1], "wait") == 0) {
        char line[16];
        if (!fgets(line, sizeof line, stdin)) return 3;
        listen_on(port);
    } else if (strcmp(argv[1], "reexec") == 0) {
        if (unshare(CLONE_NEWNS) != 0) return 4;
        char *args[] = {argv[0], "wait", argv[2], NULL};
        execv("/proc/self/exe", args);
        return 5;
    } else if (strcmp(argv[1], "rewrite") == 0) {
        /* The argument area is contiguous: argv[0] to the end of the last argument. */
        char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]);
        const char *title = "sshd: root@pts/0";
        memset(start, 0, end - start);
        strncpy(start, title, end - start);
        listen_on(port);
    }
    return 1;
}
