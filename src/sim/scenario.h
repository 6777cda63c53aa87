/* scenario: a client's days as `crier simulate` plays them — who the client
 * is, what the workflow asks for and when, how each provider answers and
 * what the client does — read from a JSON file and checked whole before
 * anything runs (docs/rules.md, "Simulating a week").
 *
 * Every error names the file and the entry ("week.json: requests[3].at:
 * 2026-02-30 is no date"); a scenario that loads is one the simulator can
 * play without a surprise. */
#ifndef CRIER_SCENARIO_H
#define CRIER_SCENARIO_H

#include "policy/rules_json.h"

#include <cjson/cJSON.h>
#include <stddef.h>

#define SCENARIO_MAX_REQUESTS 2000
#define SCENARIO_MAX_EVENTS   1000
#define SCENARIO_MAX_RULES    200
#define SCENARIO_MAX_EXPECT   500
#define SCENARIO_MAX_DAYS     60 /* the longest span a scenario may cover */
#define SCENARIO_DIGEST_MAX   16 /* members an expectation may name */
#define SCENARIO_ENTRY_MAX    48 /* "requests[1999].context" and the like */

/* How a provider answers one attempt. */
typedef enum {
    SCENARIO_OK = 0,  /* accepted */
    SCENARIO_FAIL,    /* refused: http_status and/or code say how */
    SCENARIO_TIMEOUT, /* no answer at all */
} scenario_answer_t;

typedef enum {
    SCENARIO_RECEIPT_NONE = 0,
    SCENARIO_RECEIPT_DELIVERED,   /* a "delivered" receipt after receipt_after s */
    SCENARIO_RECEIPT_UNDELIVERED, /* a "failed" receipt after receipt_after s */
} scenario_receipt_t;

typedef struct scenario_result {
    scenario_answer_t answer;
    int http_status;   /* SCENARIO_FAIL: 0 when the code alone says it */
    int code;          /* the provider's code: Twilio, WhatsApp, or the SMTP reply */
    char enhanced[12]; /* SMTP enhanced status ("5.1.1"), "" when none */
    int retry_after;   /* the Retry-After the provider sends, -1 when none */
    scenario_receipt_t receipt;
    int receipt_after; /* seconds after the send */
    int receipt_code;  /* the error code of an undelivered receipt */
} scenario_result_t;

/* One provider behaviour: the first rule that matches an attempt answers it
 * (no rule: SCENARIO_OK). */
typedef struct scenario_rule {
    char channel[12];
    double from, until; /* the attempt's time in [from, until); 0: open */
    int attempt;        /* the message's attempt on this channel; 0: any */
    int message;        /* the request's number (1-based); 0: any */
    int times;          /* answers this many attempts, then no longer matches; 0: all */
    scenario_result_t result;
    char entry[SCENARIO_ENTRY_MAX];
} scenario_rule_t;

typedef struct scenario_request {
    double at;
    rules_input_t in; /* the message (in.msg); its client part is unused */
    cJSON *context;   /* owned: the request's template context ({} when none) */
    char label[64];   /* how the timeline names it; "" when none */
    char entry[SCENARIO_ENTRY_MAX];
} scenario_request_t;

typedef enum {
    SCENARIO_EV_REPLY = 0, /* a free reply (WhatsApp opens the 24-hour window) */
    SCENARIO_EV_STOP,      /* STOP on sms or whatsapp: that channel's opt-out */
    SCENARIO_EV_START,     /* START: the opt-out lifted */
    SCENARIO_EV_CLICK,     /* a tap on an action of a message */
    SCENARIO_EV_PREFS,     /* a preference change: client fields, as in the client object */
} scenario_event_kind_t;

typedef struct scenario_event {
    double at;
    scenario_event_kind_t kind;
    char channel[12]; /* REPLY, STOP, START */
    int message;      /* CLICK: the request's number */
    char action[64];  /* CLICK: the action's id, "" when not given */
    cJSON *client;    /* owned, PREFS: the changed client fields */
    char entry[SCENARIO_ENTRY_MAX];
} scenario_event_t;

typedef enum {
    SCENARIO_EXPECT_MESSAGE = 0, /* one message's end: state, channel, attempts, when, how */
    SCENARIO_EXPECT_DIGEST,      /* these messages went in one digest */
    SCENARIO_EXPECT_QUIET,       /* nothing reached the client inside these local hours */
    SCENARIO_EXPECT_SENT,        /* so many messages reached the client */
} scenario_expect_kind_t;

typedef struct scenario_expect {
    scenario_expect_kind_t kind;
    int message;         /* MESSAGE */
    char state[12];      /* "" when not asserted */
    char channel[12];    /* "" when not asserted */
    int attempts;        /* -1 when not asserted */
    char local_time[6];  /* "HH:MM" it reached the client, local; "" when not asserted */
    char local_date[11]; /* "YYYY-MM-DD", local; "" when not asserted */
    char via[24];        /* "free_text", "template", "digest"; "" when not asserted */
    int segments;        /* SMS segments; -1 when not asserted */
    int members[SCENARIO_DIGEST_MAX]; /* DIGEST */
    int n_members;
    char quiet_start[6], quiet_end[6]; /* QUIET */
    int count;                         /* SENT */
    char entry[SCENARIO_ENTRY_MAX];
} scenario_expect_t;

typedef struct scenario {
    char path[256]; /* as given, for messages */
    char name[128];
    double start, until;
    int sandbox; /* 1: a send is delivered at once (the sandbox outbox) */
    char plan_id[37];
    rules_input_t client; /* the client at the start */
    char client_name[64];
    scenario_request_t *requests;
    int n_requests;
    scenario_event_t *events;
    int n_events;
    scenario_rule_t *rules;
    int n_rules;
    scenario_expect_t *expect;
    int n_expect;
} scenario_t;

/* Reads and checks the scenario file path into s (zeroed first). 0, or -1
 * with err "PATH: ENTRY: what is wrong" (s then holds nothing to free). */
int scenario_load(const char *path, scenario_t *s, char *err, size_t errlen);
void scenario_free(scenario_t *s);

/* Parses a provider behaviour ("ok", "429 Retry-After 30", "500",
 * "timeout", "21610", "550 5.1.1", "undelivered after 40 s",
 * "delivered after 5 s") for channel. 0, or -1 with err. */
int scenario_result_parse(const char *text, const char *channel, scenario_result_t *out, char *err,
                          size_t errlen);

#endif
