/* SPDX-License-Identifier: Apache-2.0
 *
 * The pod sandbox ("pause") process of tests/k8s/node.sh: it holds the pod's
 * namespaces, reaps the zombies it inherits as PID 1, and exits 0 on SIGTERM
 * or SIGINT.  Built static, so its image is this one file. */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
        (void)sig;
        _exit(0);
}

static void on_child(int sig)
{
        (void)sig;
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
}

int main(void)
{
        struct sigaction stop = {.sa_handler = on_stop};
        struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};

        sigaction(SIGTERM, &stop, NULL);
        sigaction(SIGINT, &stop, NULL);
        sigaction(SIGCHLD, &child, NULL);
        for (;;)
                pause();
}
