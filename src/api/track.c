/* track: the tracking endpoints (see track.h). */
#include "api/track.h"

#include "api/api.h"
#include "api/dbreply.h"
#include "crypto/linktok.h"
#include "http/agent.h"
#include "metrics/metrics.h"
#include "store/db.h"
#include "store/tracking.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The 1x1 transparent GIF89a: a 2-colour table, a graphic control
 * extension making index 0 transparent, and a complete LZW stream (clear,
 * index 0, end). */
static const unsigned char track_gif[43] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff,
    0xff, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

#define TRACK_GIF_SUFFIX ".gif"
/* No message has this many links (template/links.h caps them far lower):
 * a signed index beyond it names nothing. */
#define TRACK_INDEX_MAX 100000

static void track_not_found(http_answer_t *out)
{
    http_answer_error(out, 404, "not_found", "no such link");
}

/* The token of the path, verified: kind, signature and age. 0 with *t, or
 * -1 (answer 404). suffix must end the segment and is not part of it. */
static int track_token(const http_req_t *rq, linktok_kind_t kind, const char *suffix, linktok_t *t)
{
    const api_t *api = rq->ctx;
    const char *seg = http_req_param(rq, "token");
    if (!seg)
        return -1;
    size_t len = strlen(seg), sl = suffix ? strlen(suffix) : 0;
    if (len < sl || (sl && strcmp(seg + len - sl, suffix) != 0))
        return -1;
    if (linktok_read(api->app->keys.link, seg, len - sl, kind, t) != 0)
        return -1;
    if (linktok_expired(t, time(NULL), (uint32_t)api->app->cfg->link_ttl_days))
        return -1;
    if (t->arg > TRACK_INDEX_MAX)
        return -1;
    return 0;
}

/* 1 when url can go in a Location header as it is: no control character
 * (they were refused when the link was stored; checked again because a
 * header is no place to trust a row). */
static int track_url_ok(const char *url)
{
    if (!url || !*url)
        return 0;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* Records (GET) or only looks up (HEAD) a hit on communication id; index
 * -1 for an open. 1 when found (*url: a click's URL, owned), 0 when not
 * (answer 404), -1 with out set. */
static int track_hit(const http_req_t *rq, const char *id, int index, char **url,
                     http_answer_t *out)
{
    const api_t *api = rq->ctx;
    *url = NULL;
    const char *what = index < 0 ? "track_open_failed" : "track_click_failed";
    PGconn *conn = api_db_conn(rq, out, what);
    if (!conn)
        return -1;
    char err[512] = "";
    int rc;
    if (strcmp(rq->method, "HEAD") == 0) {
        rc = store_track_peek(conn, id, index, url, err, sizeof err);
    } else {
        store_track_hit_t h = {
            .communication_id = id,
            .link_index = index,
            .agent = http_agent_name(http_agent_class(http_req_header(rq, "User-Agent"))),
            .machine_window_s = api->app->cfg->tracking_machine_window_s,
        };
        store_track_result_t res;
        rc = store_track_hit(conn, &h, &res, err, sizeof err);
        if (rc == 0 && res.found) {
            rc = 1;
            *url = res.url;
            if (res.opened_now)
                metrics_communication(res.message_type, res.channel, METRICS_OPENED);
            if (res.clicked_now)
                metrics_communication(res.message_type, res.channel, METRICS_CLICKED);
        }
    }
    int lost = rc < 0 && db_conn_lost(conn);
    db_pool_put(api->app->pool, conn);
    if (rc < 0)
        api_db_failed(out, lost, what, err);
    return rc;
}

void api_track_click(const http_req_t *rq, http_answer_t *out)
{
    linktok_t t;
    if (track_token(rq, LINKTOK_CLICK, NULL, &t) != 0) {
        track_not_found(out);
        return;
    }
    char *url = NULL;
    int rc = track_hit(rq, t.id, (int)t.arg, &url, out);
    if (rc == 1 && track_url_ok(url))
        http_answer_redirect(out, 302, url);
    else if (rc >= 0)
        track_not_found(out);
    free(url);
}

void api_track_open(const http_req_t *rq, http_answer_t *out)
{
    linktok_t t;
    if (track_token(rq, LINKTOK_OPEN, TRACK_GIF_SUFFIX, &t) != 0) {
        track_not_found(out);
        return;
    }
    char *url = NULL;
    int rc = track_hit(rq, t.id, -1, &url, out);
    free(url);
    if (rc == 1) {
        http_answer_bytes(out, 200, track_gif, sizeof track_gif);
        out->no_cache = 1;
    } else if (rc == 0) {
        track_not_found(out);
    }
}
