/* SPDX-License-Identifier: Apache-2.0 */
/*
 * chaos-proxy: a loopback TCP proxy whose behaviour is switched at run time,
 * for the chaos run (tests/chaos/run.sh).  Each replica's kubeconfig points
 * at its own proxy, so one replica can be cut off from the API server while
 * the others are not.  TLS passes through untouched (the proxy only copies
 * bytes), so the server's certificate must carry 127.0.0.1.
 *
 *   chaos-proxy --listen 127.0.0.1:PORT --target 127.0.0.1:PORT --control FIFO
 *               [--max-seconds N]
 *
 * Modes, one command a line written to the FIFO (created if missing):
 *   pass        forward everything at once (the start mode)
 *   drop        reset every open connection, and reset new ones at once
 *   blackhole   stop forwarding but keep every socket: bytes wait in the
 *               kernel buffers, new connections wait in the accept backlog
 *               (what a partition looks like to TCP); forwarding resumes,
 *               late, with the next pass or delay
 *   delay MS    forward each chunk MS milliseconds after it was read
 *   quit        exit
 * Every mode change is logged to stderr with CLOCK_BOOTTIME and wall time.
 * The proxy exits by itself after --max-seconds (default 3600), on SIGTERM
 * or SIGINT, or on quit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MAX_CONNS 256
#define CHUNK 16384
/* A direction stops reading while this much waits to be written. */
#define QUEUE_MAX (1024 * 1024)

enum mode { MODE_PASS, MODE_DROP, MODE_BLACKHOLE, MODE_DELAY };

typedef struct chunk {
        struct chunk *next;
        uint64_t due;
        size_t len, off;
        char data[];
} chunk;

/* One direction: bytes read from `from`, written to `to`. */
typedef struct pipe_dir {
        int from, to;
        chunk *head, *tail;
        size_t queued;
        bool eof;  /* `from` said EOF */
        bool shut; /* EOF passed on to `to` */
} pipe_dir;

typedef struct conn {
        bool used, connecting;
        int client, upstream;
        pipe_dir d[2]; /* 0: client -> upstream, 1: upstream -> client */
} conn;

static conn conns[MAX_CONNS];
static enum mode mode = MODE_PASS;
static uint64_t delay_usec;
static volatile sig_atomic_t stop;

static uint64_t now_usec(clockid_t clk) {
        struct timespec ts;
        clock_gettime(clk, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "chaos-proxy boottime=%llu wall=%llu ",
                (unsigned long long)now_usec(CLOCK_BOOTTIME),
                (unsigned long long)now_usec(CLOCK_REALTIME));
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int parse_addr(const char *s, struct sockaddr_in *sa) {
        char host[64];
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
                return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        memset(sa, 0, sizeof *sa);
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)atoi(colon + 1));
        return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static void free_queue(pipe_dir *d) {
        while (d->head) {
                chunk *c = d->head;
                d->head = c->next;
                free(c);
        }
        d->tail = NULL;
        d->queued = 0;
}

static void close_conn(conn *c, bool reset) {
        int fds[2] = {c->client, c->upstream};
        for (int i = 0; i < 2; i++) {
                if (fds[i] < 0)
                        continue;
                if (reset)
                        (void)setsockopt(fds[i], SOL_SOCKET, SO_LINGER,
                                         &(struct linger){.l_onoff = 1, .l_linger = 0},
                                         sizeof(struct linger));
                close(fds[i]);
        }
        free_queue(&c->d[0]);
        free_queue(&c->d[1]);
        memset(c, 0, sizeof *c);
        c->client = c->upstream = -1;
}

static void accept_one(int lfd, const struct sockaddr_in *target) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
                return;
        conn *c = NULL;
        for (int i = 0; i < MAX_CONNS && !c; i++)
                if (!conns[i].used)
                        c = &conns[i];
        int up = c ? socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
        if (up < 0 || mode == MODE_DROP) {
                (void)setsockopt(fd, SOL_SOCKET, SO_LINGER,
                                 &(struct linger){.l_onoff = 1, .l_linger = 0},
                                 sizeof(struct linger));
                close(fd);
                if (up >= 0)
                        close(up);
                return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        (void)setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(up, (const struct sockaddr *)target, sizeof *target) < 0 &&
            errno != EINPROGRESS) {
                close(fd);
                close(up);
                return;
        }
        *c = (conn){.used = true, .connecting = true, .client = fd, .upstream = up};
        c->d[0] = (pipe_dir){.from = fd, .to = up};
        c->d[1] = (pipe_dir){.from = up, .to = fd};
}

static void drop_all(void) {
        int n = 0;
        for (int i = 0; i < MAX_CONNS; i++)
                if (conns[i].used) {
                        close_conn(&conns[i], true);
                        n++;
                }
        say("reset %d connection(s)", n);
}

static void command(char *line) {
        char *nl = strpbrk(line, "\r\n");
        if (nl)
                *nl = '\0';
        if (strcmp(line, "pass") == 0)
                mode = MODE_PASS;
        else if (strcmp(line, "drop") == 0) {
                mode = MODE_DROP;
                drop_all();
        } else if (strcmp(line, "blackhole") == 0)
                mode = MODE_BLACKHOLE;
        else if (strncmp(line, "delay ", 6) == 0) {
                mode = MODE_DELAY;
                delay_usec = strtoull(line + 6, NULL, 10) * 1000u;
        } else if (strcmp(line, "quit") == 0)
                stop = 1;
        else {
                say("unknown command \"%s\"", line);
                return;
        }
        say("mode %s", line);
}

/* Reads what `from` has; false when the connection must close. */
static bool pump_in(pipe_dir *d, uint64_t now) {
        if (d->eof || d->queued >= QUEUE_MAX)
                return true;
        chunk *c = malloc(sizeof *c + CHUNK);
        if (!c)
                return false;
        ssize_t n = read(d->from, c->data, CHUNK);
        if (n < 0) {
                free(c);
                return errno == EAGAIN || errno == EINTR;
        }
        if (n == 0) {
                free(c);
                d->eof = true;
                return true;
        }
        c->next = NULL;
        c->len = (size_t)n;
        c->off = 0;
        c->due = now + (mode == MODE_DELAY ? delay_usec : 0);
        if (d->tail)
                d->tail->next = c;
        else
                d->head = c;
        d->tail = c;
        d->queued += (size_t)n;
        return true;
}

/* Writes what is due; false when the connection must close. */
static bool pump_out(pipe_dir *d, uint64_t now) {
        while (d->head && d->head->due <= now) {
                chunk *c = d->head;
                ssize_t n = send(d->to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR;
                c->off += (size_t)n;
                d->queued -= (size_t)n;
                if (c->off < c->len)
                        return true;
                d->head = c->next;
                if (!d->head)
                        d->tail = NULL;
                free(c);
        }
        if (d->eof && !d->head && !d->shut) {
                (void)shutdown(d->to, SHUT_WR);
                d->shut = true;
        }
        return true;
}

static void on_signal(int sig) {
        stop = 1;
}

int main(int argc, char **argv) {
        const char *listen_s = NULL, *target_s = NULL, *control = NULL;
        unsigned long max_seconds = 3600;
        static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                             {"target", required_argument, NULL, 't'},
                                             {"control", required_argument, NULL, 'c'},
                                             {"max-seconds", required_argument, NULL, 'm'},
                                             {}};
        int o;
        while ((o = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (o) {
                case 'l':
                        listen_s = optarg;
                        break;
                case 't':
                        target_s = optarg;
                        break;
                case 'c':
                        control = optarg;
                        break;
                case 'm':
                        max_seconds = strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        }
        struct sockaddr_in la, ta;
        if (!listen_s || !target_s || !control || parse_addr(listen_s, &la) < 0 ||
            parse_addr(target_s, &ta) < 0) {
                fprintf(stderr, "usage: chaos-proxy --listen IP:PORT --target IP:PORT --control "
                                "FIFO [--max-seconds N]\n");
                return 2;
        }
        if (mkfifo(control, 0600) < 0 && errno != EEXIST) {
                perror("chaos-proxy: mkfifo");
                return 1;
        }
        /* Opened read-write, so the FIFO never reports EOF between writers. */
        int cfd = open(control, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (cfd < 0 || lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
            bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 128) < 0) {
                perror("chaos-proxy");
                return 1;
        }
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        for (int i = 0; i < MAX_CONNS; i++)
                conns[i].client = conns[i].upstream = -1;
        say("listening on %s, forwarding to %s, control %s", listen_s, target_s, control);

        uint64_t end = now_usec(CLOCK_BOOTTIME) + (uint64_t)max_seconds * 1000000u;
        char cmd[256];
        size_t cmd_len = 0;
        while (!stop && now_usec(CLOCK_BOOTTIME) < end) {
                /* Per direction: its source for reading, its sink for writing. */
                struct pollfd p[2 + 4 * MAX_CONNS];
                int idx[2 + 4 * MAX_CONNS];
                nfds_t n = 0;
                uint64_t now = now_usec(CLOCK_BOOTTIME), next_due = UINT64_MAX;
                p[n++] = (struct pollfd){.fd = cfd, .events = POLLIN};
                /* In a black hole, new connections wait in the backlog. */
                p[n++] = (struct pollfd){.fd = lfd, .events = mode == MODE_BLACKHOLE ? 0 : POLLIN};
                for (int i = 0; i < MAX_CONNS; i++) {
                        conn *c = &conns[i];
                        if (!c->used)
                                continue;
                        if (c->connecting) {
                                idx[n] = i * 4;
                                p[n++] = (struct pollfd){.fd = c->upstream, .events = POLLOUT};
                                continue;
                        }
                        if (mode == MODE_BLACKHOLE)
                                continue;
                        for (int k = 0; k < 2; k++) {
                                pipe_dir *d = &c->d[k];
                                if (!d->eof && d->queued < QUEUE_MAX) {
                                        idx[n] = i * 4 + k * 2;
                                        p[n++] = (struct pollfd){.fd = d->from, .events = POLLIN};
                                }
                                if (d->head && d->head->due <= now) {
                                        idx[n] = i * 4 + k * 2 + 1;
                                        p[n++] = (struct pollfd){.fd = d->to, .events = POLLOUT};
                                } else if (d->head && d->head->due < next_due)
                                        next_due = d->head->due;
                        }
                }
                int timeout = 1000;
                if (next_due != UINT64_MAX)
                        timeout = next_due <= now ? 0 : (int)((next_due - now + 999) / 1000);
                if (poll(p, n, timeout) < 0 && errno != EINTR)
                        break;
                now = now_usec(CLOCK_BOOTTIME);
                if (p[0].revents & POLLIN) {
                        ssize_t r = read(cfd, cmd + cmd_len, sizeof cmd - 1 - cmd_len);
                        if (r > 0) {
                                cmd_len += (size_t)r;
                                cmd[cmd_len] = '\0';
                                char *nl;
                                while ((nl = strchr(cmd, '\n'))) {
                                        *nl = '\0';
                                        command(cmd);
                                        size_t rest = cmd_len - (size_t)(nl + 1 - cmd);
                                        memmove(cmd, nl + 1, rest + 1);
                                        cmd_len = rest;
                                }
                                if (cmd_len == sizeof cmd - 1)
                                        cmd_len = 0;
                        }
                        /* A command may have reset every connection: poll again. */
                        continue;
                }
                if (p[1].revents & POLLIN)
                        for (int k = 0; k < 16; k++)
                                accept_one(lfd, &ta);
                for (nfds_t j = 2; j < n; j++) {
                        conn *c = &conns[idx[j] / 4];
                        int k = (idx[j] / 2) % 2;
                        bool out = idx[j] % 2;
                        if (!c->used || !p[j].revents)
                                continue;
                        if (c->connecting) {
                                int err = 0;
                                socklen_t len = sizeof err;
                                getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len);
                                if (err)
                                        close_conn(c, true);
                                else
                                        c->connecting = false;
                                continue;
                        }
                        pipe_dir *d = &c->d[k];
                        bool ok = out ? true : pump_in(d, now);
                        if (ok)
                                ok = pump_out(d, now);
                        if (!ok || (c->d[0].shut && c->d[1].shut))
                                close_conn(c, !ok);
                }
                /* Delayed chunks that fell due while nothing else happened. */
                for (int i = 0; i < MAX_CONNS; i++) {
                        conn *c = &conns[i];
                        for (int k = 0;
                             c->used && !c->connecting && mode != MODE_BLACKHOLE && k < 2; k++)
                                if ((c->d[k].head && c->d[k].head->due <= now) ||
                                    (c->d[k].eof && !c->d[k].shut))
                                        if (!pump_out(&c->d[k], now) ||
                                            (c->d[0].shut && c->d[1].shut)) {
                                                close_conn(c, false);
                                                break;
                                        }
                }
        }
        for (int i = 0; i < MAX_CONNS; i++)
                if (conns[i].used)
                        close_conn(&conns[i], false);
        close(lfd);
        close(cfd);
        say("exiting");
        return 0;
}
