/* SPDX-License-Identifier: Apache-2.0 */
#include "mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct letter {
        struct letter *next;
        koc_mailbox_fn_t fn;
        void *userdata;
} letter;

struct koc_mailbox {
        pthread_mutex_t lock;
        pthread_cond_t not_full;
        pthread_cond_t idle; /* no poster inside */
        letter *head, *tail;
        size_t pending;
        size_t capacity;
        unsigned posters; /* threads inside post() */
        bool closing;
        int fd;
        sd_event_source *source;
        pthread_t loop_thread;
};

static letter *take_all(koc_mailbox *mb) {
        pthread_mutex_lock(&mb->lock);
        letter *l = mb->head;
        mb->head = mb->tail = NULL;
        mb->pending = 0;
        pthread_cond_broadcast(&mb->not_full);
        pthread_mutex_unlock(&mb->lock);
        return l;
}

static void run_all(letter *l, bool cancelled) {
        for (letter *next; l; l = next) {
                next = l->next;
                l->fn(l->userdata, cancelled);
                free(l);
        }
}

static int on_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        koc_mailbox *mb = userdata;
        uint64_t n;

        (void)!read(fd, &n, sizeof n);
        /* Closures posted while these run wake the eventfd again, so the
         * loop gets back to them after other sources had their turn. */
        run_all(take_all(mb), false);
        return 0;
}

int koc_mailbox_new(sd_event *event, size_t capacity, koc_mailbox **ret) {
        koc_mailbox *mb = calloc(1, sizeof *mb);
        if (!mb)
                return -ENOMEM;
        pthread_mutex_init(&mb->lock, NULL);
        pthread_cond_init(&mb->not_full, NULL);
        pthread_cond_init(&mb->idle, NULL);
        mb->capacity = capacity ? capacity : 1024;
        mb->loop_thread = pthread_self();
        mb->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (mb->fd < 0) {
                int r = -errno;
                koc_mailbox_free(mb);
                return r;
        }
        int r = sd_event_add_io(event, &mb->source, mb->fd, EPOLLIN, on_event, mb);
        if (r < 0) {
                koc_mailbox_free(mb);
                return r;
        }
        *ret = mb;
        return 0;
}

void koc_mailbox_close(koc_mailbox *mb) {
        pthread_mutex_lock(&mb->lock);
        mb->closing = true;
        pthread_cond_broadcast(&mb->not_full);
        while (mb->posters > 0)
                pthread_cond_wait(&mb->idle, &mb->lock);
        pthread_mutex_unlock(&mb->lock);
        run_all(take_all(mb), true);
}

koc_mailbox *koc_mailbox_free(koc_mailbox *mb) {
        if (!mb)
                return NULL;
        koc_mailbox_close(mb);
        sd_event_source_disable_unref(mb->source);
        if (mb->fd >= 0)
                close(mb->fd);
        pthread_cond_destroy(&mb->idle);
        pthread_cond_destroy(&mb->not_full);
        pthread_mutex_destroy(&mb->lock);
        free(mb);
        return NULL;
}

bool koc_mailbox_on_loop(koc_mailbox *mb) {
        return pthread_equal(pthread_self(), mb->loop_thread);
}

int koc_mailbox_post(koc_mailbox *mb, koc_mailbox_fn_t fn, void *userdata) {
        letter *l = malloc(sizeof *l);
        if (!l)
                return -ENOMEM;
        *l = (letter){.fn = fn, .userdata = userdata};
        bool loop = koc_mailbox_on_loop(mb);

        pthread_mutex_lock(&mb->lock);
        mb->posters++;
        while (!mb->closing && !loop && mb->pending >= mb->capacity)
                pthread_cond_wait(&mb->not_full, &mb->lock);
        int r = 0;
        if (mb->closing) {
                r = -ECANCELED;
                free(l);
        } else {
                if (mb->tail)
                        mb->tail->next = l;
                else
                        mb->head = l;
                mb->tail = l;
                mb->pending++;
                uint64_t one = 1;
                (void)!write(mb->fd, &one, sizeof one);
        }
        if (--mb->posters == 0)
                pthread_cond_broadcast(&mb->idle);
        pthread_mutex_unlock(&mb->lock);
        return r;
}

unsigned koc_mailbox_waiting(koc_mailbox *mb) {
        pthread_mutex_lock(&mb->lock);
        unsigned n = mb->posters;
        pthread_mutex_unlock(&mb->lock);
        return n;
}

size_t koc_mailbox_pending(koc_mailbox *mb) {
        pthread_mutex_lock(&mb->lock);
        size_t n = mb->pending;
        pthread_mutex_unlock(&mb->lock);
        return n;
}
