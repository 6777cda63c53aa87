/* actions: the rows of a message's one-click answers (docs/tracking.md,
 * Actions): the actions a message offered (communication_actions) and the
 * one answer it got (communication_answers), whose recording queues the
 * workflow's client_action callback in the same statement.
 *
 * Each function runs one statement on a connection the caller owns and
 * returns 0, or -1 with err. */
#ifndef CRIER_STORE_ACTIONS_H
#define CRIER_STORE_ACTIONS_H

#include <libpq-fe.h>
#include <stddef.h>

#define STORE_ACTIONS_MAX      16
#define STORE_ACTION_NAME_MAX  32
#define STORE_ACTION_VALUE_MAX 128
#define STORE_ACTION_LABEL_MAX 256

/* One action of a message; its index is its position in the list. */
typedef struct store_action {
    const char *action;
    const char *value;
    const char *label;
} store_action_t;

/* Stores a[0..n) (n <= STORE_ACTIONS_MAX) as the actions 0..n-1 of
 * communication id, replacing what an earlier rendering stored (a retry
 * renders again); only while it is being sent (a message an erasure
 * cancelled keeps nothing). */
int store_actions_put(PGconn *conn, const char *id, const store_action_t *a, int n, char *err,
                      size_t errlen);

/* The answer a message has, or the one a click would give. */
typedef struct store_answer {
    int found;    /* 0: no such message or action, or its client was erased */
    int recorded; /* 1: this click was the message's answer, and is stored */
    char action[STORE_ACTION_NAME_MAX];
    char value[STORE_ACTION_VALUE_MAX];
    char label[STORE_ACTION_LABEL_MAX];
} store_answer_t;

/* Records action index of communication id as its answer by channel,
 * unless it has one already; only when it is recorded, queues a
 * client_action workflow callback (when crier_callback_wanted says so)
 * and notifies crier_callbacks, all in one statement. r is the message's
 * first answer: this one, or the one recorded before. */
int store_action_answer(PGconn *conn, const char *id, int index, const char *channel,
                        store_answer_t *r, char *err, size_t errlen);

/* What store_action_answer would show, without recording anything (a HEAD
 * request): the recorded answer, else action index's. */
int store_action_peek(PGconn *conn, const char *id, int index, store_answer_t *r, char *err,
                      size_t errlen);

#endif
