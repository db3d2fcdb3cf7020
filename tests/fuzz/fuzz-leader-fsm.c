/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Lease record parser and the leader election state machine.
 *
 * Input: a sequence of operations.  Each starts with one byte: the low four
 * bits pick the event, the high four advance the clock (0..1.5 s).  Events
 * that carry a Lease read a two-byte length and that many bytes of JSON,
 * parsed with koc__lease_record_from_json (an unreadable body is an answer
 * without a record); bookmarks and deletions use the bytes as a
 * resourceVersion.  Answers go to the request in flight; one operation
 * echoes the FSM's own last write back as the server would.
 *
 * Checked after every step: the FSM never starts leading from anything but
 * a 2xx write answer whose record names its identity, and while leading the
 * record it knows names its identity.  koc__lease_record_to_json on each parsed
 * object (as the base) must give back the same record.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "leader/lease-record.h"

#define IDENTITY "me"

typedef struct input {
        const uint8_t *p;
        size_t n;
} input;

static bool take(input *in, uint8_t *ret) {
        if (in->n == 0)
                return false;
        *ret = *in->p++;
        in->n--;
        return true;
}

static uint64_t rnd_state;
static uint64_t fuzz_random(uint64_t n) {
        rnd_state = rnd_state * 6364136223846793005u + 1442695040888963407u;
        return (rnd_state >> 33) % n;
}

static bool names_us(const lease_record *r) {
        return r && !r->holder_truncated && strcmp(r->holder, IDENTITY) == 0;
}

static void check_roundtrip(const cJSON *obj, const lease_record *r) {
        cJSON *o = koc__lease_record_to_json(obj, "ns", "name", r);
        if (!o)
                abort();
        lease_record back;
        if (koc__lease_record_from_json(o, &back) < 0)
                abort();
        if (strcmp(back.holder, r->holder) != 0 || back.holder_truncated != r->holder_truncated ||
            back.lease_duration_seconds != r->lease_duration_seconds ||
            back.lease_transitions != r->lease_transitions ||
            back.acquire_time != r->acquire_time || back.renew_time != r->renew_time ||
            strcmp(back.resource_version, r->resource_version) != 0)
                abort();
        cJSON_Delete(o);
}

/* Reads a length-prefixed JSON text; *ret_rec is NULL when it is not a Lease. */
static void take_record(input *in, cJSON **ret_obj, lease_record *rec, const lease_record **ret_rec,
                        char **ret_text) {
        uint8_t hi = 0, lo = 0;
        take(in, &hi);
        take(in, &lo);
        size_t len = (size_t)hi << 8 | lo;
        if (len > in->n)
                len = in->n;
        *ret_text = strndup((const char *)in->p, len);
        *ret_obj = cJSON_ParseWithLength((const char *)in->p, len);
        in->p += len;
        in->n -= len;
        *ret_rec = NULL;
        if (*ret_obj && koc__lease_record_from_json(*ret_obj, rec) == 0) {
                *ret_rec = rec;
                check_roundtrip(*ret_obj, rec);
        }
}

static const long statuses[] = {200, 201, 409, 404, 500, 403, 410, 429, 0, 200, 200, 201};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        input in = {data, size};
        leader_fsm f;
        leader_fsm_config cfg = {
                .identity = IDENTITY,
                .lease_duration = 1000 * KOC_USEC_PER_MSEC,
                .renew_deadline = 600 * KOC_USEC_PER_MSEC,
                .retry_period = 100 * KOC_USEC_PER_MSEC,
                .observe_timeout = 0,
                .jitter_max = 10 * KOC_USEC_PER_MSEC,
                .random = fuzz_random,
        };
        uint8_t b;
        rnd_state = 1;
        if (take(&in, &b) && (b & 1))
                cfg.observe_timeout = 5 * KOC_USEC_PER_SEC;
        koc__leader_fsm_init(&f, &cfg);

        uint64_t now = 1000 * KOC_USEC_PER_SEC;
        uint64_t wall = UINT64_C(1795000000) * KOC_USEC_PER_SEC;
        lease_record last_write = {0};
        bool have_write = false;
        uint64_t server_rv = 1;

        leader_event start = {.type = LEADER_EV_START};
        koc__leader_fsm_step(&f, &start, now, wall);

        for (unsigned steps = 0; steps < 256 && take(&in, &b); steps++) {
                uint64_t dt = (uint64_t)(b >> 4) * 100 * KOC_USEC_PER_MSEC;
                now += dt;
                wall += dt;
                leader_event ev = {0};
                cJSON *obj = NULL;
                char *text = NULL;
                lease_record rec, echo;
                uint8_t arg = 0;
                switch (b & 0x0f) {
                case 0:
                        ev.type = LEADER_EV_START;
                        break;
                case 1:
                        ev.type = LEADER_EV_STOP;
                        break;
                case 2:
                        ev.type = LEADER_EV_STEP_DOWN;
                        break;
                case 3:
                case 12:
                case 13:
                        ev.type = LEADER_EV_TIMER;
                        if (f.timer_at > now) {
                                wall += f.timer_at - now;
                                now = f.timer_at;
                        }
                        break;
                case 4:
                        ev.type = LEADER_EV_ANSWER;
                        take(&in, &arg);
                        ev.seq = f.req_seq - (arg >> 7);
                        ev.status = statuses[arg % KOC_ELEMENTSOF(statuses)];
                        if (ev.status == 0)
                                ev.error = -ECONNRESET;
                        take_record(&in, &obj, &rec, &ev.record, &text);
                        break;
                case 5:
                        ev.type = LEADER_EV_ANSWER;
                        take(&in, &arg);
                        ev.seq = f.req_seq;
                        ev.status = statuses[arg % KOC_ELEMENTSOF(statuses)];
                        if (ev.status == 0)
                                ev.error = -ETIMEDOUT;
                        break;
                case 6:
                        ev.type = LEADER_EV_WATCH_OBJECT;
                        take_record(&in, &obj, &rec, &ev.record, &text);
                        break;
                case 7:
                        /* The deleted object's resourceVersion (any text). */
                        ev.type = LEADER_EV_WATCH_DELETED;
                        take_record(&in, &obj, &rec, &ev.record, &text);
                        ev.record = NULL;
                        ev.resource_version = text;
                        break;
                case 8:
                        /* The watch resumes itself (core/reflector.c), so
                         * bookmarks and 410s never reach the machine: a
                         * replayed object instead. */
                        ev.type = LEADER_EV_WATCH_OBJECT;
                        take_record(&in, &obj, &rec, &ev.record, &text);
                        break;
                case 9:
                        /* The watch stopped for good: no permission. */
                        ev.type = LEADER_EV_WATCH_CLOSED;
                        ev.status = 403;
                        break;
                case 10:
                        ev.type = LEADER_EV_WATCH_CLOSED;
                        take(&in, &arg);
                        ev.status = statuses[arg % KOC_ELEMENTSOF(statuses)];
                        if (ev.status == 0)
                                ev.error = -ECONNRESET;
                        break;
                default:
                        /* The server accepts the write in flight as sent. */
                        ev.type = LEADER_EV_ANSWER;
                        ev.seq = f.req_seq;
                        ev.status = 200;
                        if (have_write) {
                                echo = last_write;
                                snprintf(echo.resource_version, sizeof echo.resource_version,
                                         "%" PRIu64, ++server_rv);
                                ev.record = &echo;
                        }
                        break;
                }

                koc__leader_fsm_step(&f, &ev, now, wall);

                for (size_t i = 0; i < f.n_actions; i++) {
                        const leader_action *a = &f.actions[i];
                        if (a->type == LEADER_ACT_STARTED &&
                            (ev.type != LEADER_EV_ANSWER || ev.error != 0 || ev.status < 200 ||
                             ev.status >= 300 || !names_us(ev.record)))
                                abort(); /* leadership from a record that is not ours */
                        if (a->type == LEADER_ACT_CREATE || a->type == LEADER_ACT_UPDATE) {
                                last_write = a->record;
                                have_write = true;
                        }
                }
                if (f.state == LEADER_FSM_LEADING && (!f.exists || !names_us(&f.observed)))
                        abort();
                if ((koc__leader_fsm_valid_until(&f) != 0) != (f.state == LEADER_FSM_LEADING))
                        abort();
                cJSON_Delete(obj);
                free(text);
        }
        leader_event stop = {.type = LEADER_EV_STOP};
        koc__leader_fsm_step(&f, &stop, now, wall);
        if (f.state != LEADER_FSM_STOPPED)
                abort();
        return 0;
}
