/* rl_local: the in-process GCRA limiter used while Redis cannot answer.
 *
 * A fixed open-addressed table under one mutex: the fallback is for outages
 * and processes without Redis, where a few thousand checks a second at most
 * go through it, so one short critical section is cheaper than anything
 * cleverer. Slots are never deleted, only taken over, so lookups need no
 * tombstones: a key lives in one of RL_LOCAL_PROBE slots after its hash. */
#include "ratelimit/ratelimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RL_LOCAL_PROBE 8

typedef struct rl_slot {
    uint32_t hash;
    long long tat_us; /* theoretical arrival time; a bucket is full once now >= tat */
    char key[RL_KEY_MAX + 1];
} rl_slot_t;

static rl_slot_t rl_slots[RL_LOCAL_SLOTS];
static pthread_mutex_t rl_slots_mu = PTHREAD_MUTEX_INITIALIZER;

static uint32_t rl_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static long long rl_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Finds key's slot, or takes the empty slot or, failing that, the one whose
 * bucket is fullest (smallest TAT) in its neighbourhood: a full bucket is
 * forgotten at no cost, since an absent key also means a full bucket. */
static rl_slot_t *rl_slot_for(const char *key, uint32_t h, int *fresh)
{
    rl_slot_t *victim = NULL;
    for (unsigned i = 0; i < RL_LOCAL_PROBE; i++) {
        rl_slot_t *s = &rl_slots[(h + i) % RL_LOCAL_SLOTS];
        if (s->key[0] == '\0') {
            if (!victim || victim->key[0] != '\0')
                victim = s;
            continue;
        }
        if (s->hash == h && strcmp(s->key, key) == 0) {
            *fresh = 0;
            return s;
        }
        if (!victim || (victim->key[0] != '\0' && s->tat_us < victim->tat_us))
            victim = s;
    }
    victim->hash = h;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    *fresh = 1;
    return victim;
}

int rl_local_check(const char *key, long long interval_us, int burst, rl_result_t *res)
{
    uint32_t h = rl_hash(key);
    long long limit_us = interval_us * burst;
    int fresh;

    pthread_mutex_lock(&rl_slots_mu);
    long long now = rl_mono_us();
    rl_slot_t *s = rl_slot_for(key, h, &fresh);
    long long tat = (fresh || s->tat_us < now) ? now : s->tat_us;
    long long ahead = tat + interval_us - now;
    int allowed = ahead <= limit_us;
    if (allowed)
        s->tat_us = tat + interval_us;
    else if (fresh)
        s->tat_us = now; /* cannot happen with burst >= 1; keeps the slot sane */
    pthread_mutex_unlock(&rl_slots_mu);

    res->allowed = allowed;
    res->wait_s = allowed ? 0.0 : (double)(ahead - limit_us) / 1e6;
    res->now_s = (double)now / 1e6;
    res->source = RL_SRC_LOCAL;
    return allowed ? RL_ALLOW : RL_DENY;
}
