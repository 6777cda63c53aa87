-- 015_analytics: what GET /v1/analytics reads (docs/architecture.md,
-- Analytics). A summary over a month of a large table must not scan the
-- month's rows, so each hour's figures per (channel, message type) are kept
-- as sums. Writers never update a shared sum: statement triggers append
-- what each statement changed to analytics_deltas (insert-only, so two
-- transactions never wait on one another's sum rows, nor deadlock), and the
-- delivery waker folds the deltas into analytics_hourly, one process at a
-- time (store_analytics_fold). A reader adds the hour's sums and its
-- deltas not yet folded, in one snapshot, so an answer is exact whenever
-- it is asked.
--
-- Hours are UTC hours of created_at (the communication's creation), as
-- the view crm_communication_analytics counts days. Digest rows are left
-- out: their members are the messages, and a digest moves them with it.
-- The sums are a record of what happened: deleting rows (the retention
-- purge, an erasure) does not subtract them, and they hold no client data.

CREATE TABLE analytics_hourly (
    hour          timestamptz NOT NULL,
    channel       text NOT NULL, -- 'none' for a row no channel was chosen for (skipped)
    message_type  text NOT NULL,
    total         bigint NOT NULL DEFAULT 0,
    sent          bigint NOT NULL DEFAULT 0, -- sent_at set: a provider accepted it
    delivered     bigint NOT NULL DEFAULT 0, -- delivered, or opened or clicked (which it must have been)
    opened        bigint NOT NULL DEFAULT 0, -- opened or clicked
    clicked       bigint NOT NULL DEFAULT 0,
    failed        bigint NOT NULL DEFAULT 0, -- failed or bounced
    fallback      bigint NOT NULL DEFAULT 0, -- moved to another channel of its chain at least once
    delivery_n    bigint NOT NULL DEFAULT 0, -- with both sent_at and delivered_at
    delivery_s    float8 NOT NULL DEFAULT 0, -- the sum of their delivered_at - sent_at, in seconds
    responses     bigint NOT NULL DEFAULT 0, -- free replies and action answers to it
    response_n    bigint NOT NULL DEFAULT 0, -- of those, to a sent message
    response_s    float8 NOT NULL DEFAULT 0, -- the sum of their time since sent_at, in seconds
    PRIMARY KEY (hour, channel, message_type)
);

CREATE TABLE analytics_deltas (LIKE analytics_hourly INCLUDING DEFAULTS);
CREATE INDEX analytics_deltas_hour_idx ON analytics_deltas (hour);

-- What one communication row adds to its hour (sign -1 takes it away): the
-- reader's form (store/analytics.c, for the rows of a range's cut hours and
-- of a plan or client), and the figures the triggers below count inline.
CREATE FUNCTION crier_analytics_row(c communications, sign integer)
    RETURNS analytics_hourly
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ROW(date_trunc('hour', c.created_at, 'UTC'), COALESCE(c.channel, 'none'),
               c.message_type, sign,
               sign * (c.sent_at IS NOT NULL)::int,
               sign * (c.delivered_at IS NOT NULL OR c.opened_at IS NOT NULL
                       OR c.clicked_at IS NOT NULL)::int,
               sign * (c.opened_at IS NOT NULL OR c.clicked_at IS NOT NULL)::int,
               sign * (c.clicked_at IS NOT NULL)::int,
               sign * (c.status IN ('failed', 'bounced'))::int,
               sign * (c.channel_attempt_base > 0)::int,
               sign * (c.sent_at IS NOT NULL AND c.delivered_at IS NOT NULL)::int,
               sign * COALESCE(EXTRACT(EPOCH FROM c.delivered_at - c.sent_at)::float8, 0),
               0, 0, 0::float8)::analytics_hourly;

-- The triggers' own reading of the same figures, inline rather than through
-- crier_analytics_row: passing every row of a statement to a function as a
-- composite doubled the cost of an intake batch; column expressions over the
-- transition tables cost about nothing beside the statement itself.
CREATE FUNCTION crier_analytics_comm_delta() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    -- sg: +1 for a row as it is now, -1 for the row as it was
    IF TG_OP = 'INSERT' THEN
        INSERT INTO analytics_deltas
        SELECT date_trunc('hour', created_at, 'UTC'), COALESCE(channel, 'none'), message_type,
               sum(sg),
               sum(sg * (sent_at IS NOT NULL)::int),
               sum(sg * (delivered_at IS NOT NULL OR opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int),
               sum(sg * (opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int),
               sum(sg * (clicked_at IS NOT NULL)::int),
               sum(sg * (status IN ('failed', 'bounced'))::int),
               sum(sg * (channel_attempt_base > 0)::int),
               sum(sg * (sent_at IS NOT NULL AND delivered_at IS NOT NULL)::int),
               COALESCE(sum(sg * EXTRACT(EPOCH FROM delivered_at - sent_at)::float8), 0),
               0, 0, 0
          FROM (SELECT 1 AS sg, created_at, channel, message_type, sent_at, delivered_at, opened_at, clicked_at, status, channel_attempt_base
                  FROM new_rows WHERE message_type <> 'digest') x
         GROUP BY 1, 2, 3;
    ELSE
        -- most updates (a claim, a lease renewal) change no figure: nothing is written
        INSERT INTO analytics_deltas
        SELECT date_trunc('hour', created_at, 'UTC'), COALESCE(channel, 'none'), message_type,
               sum(sg),
               sum(sg * (sent_at IS NOT NULL)::int),
               sum(sg * (delivered_at IS NOT NULL OR opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int),
               sum(sg * (opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int),
               sum(sg * (clicked_at IS NOT NULL)::int),
               sum(sg * (status IN ('failed', 'bounced'))::int),
               sum(sg * (channel_attempt_base > 0)::int),
               sum(sg * (sent_at IS NOT NULL AND delivered_at IS NOT NULL)::int),
               COALESCE(sum(sg * EXTRACT(EPOCH FROM delivered_at - sent_at)::float8), 0),
               0, 0, 0
          FROM (SELECT 1 AS sg, created_at, channel, message_type, sent_at, delivered_at, opened_at, clicked_at, status, channel_attempt_base
                  FROM new_rows WHERE message_type <> 'digest'
                UNION ALL
                SELECT -1, created_at, channel, message_type, sent_at, delivered_at, opened_at, clicked_at, status, channel_attempt_base
                  FROM old_rows WHERE message_type <> 'digest') x
         GROUP BY 1, 2, 3
        HAVING sum(sg) <> 0
            OR sum(sg * (sent_at IS NOT NULL)::int) <> 0
            OR sum(sg * (delivered_at IS NOT NULL OR opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int) <> 0
            OR sum(sg * (opened_at IS NOT NULL OR clicked_at IS NOT NULL)::int) <> 0
            OR sum(sg * (clicked_at IS NOT NULL)::int) <> 0
            OR sum(sg * (status IN ('failed', 'bounced'))::int) <> 0
            OR sum(sg * (channel_attempt_base > 0)::int) <> 0
            OR sum(sg * (sent_at IS NOT NULL AND delivered_at IS NOT NULL)::int) <> 0
            OR COALESCE(sum(sg * EXTRACT(EPOCH FROM delivered_at - sent_at)::float8), 0) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER communications_analytics_ins AFTER INSERT ON communications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crier_analytics_comm_delta();
CREATE TRIGGER communications_analytics_upd AFTER UPDATE ON communications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crier_analytics_comm_delta();

-- A response: an action answer, or a free reply (no keyword) that names
-- the message it answers. Counted in the hour of that message.
CREATE FUNCTION crier_analytics_response_delta() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_deltas (hour, channel, message_type, responses, response_n, response_s)
    SELECT date_trunc('hour', c.created_at, 'UTC'), COALESCE(c.channel, 'none'), c.message_type,
           count(*), count(c.sent_at),
           COALESCE(sum(EXTRACT(EPOCH FROM r.at - c.sent_at)::float8), 0)
      FROM (SELECT communication_id, answered_at AS at FROM new_rows) r
      JOIN communications c ON c.id = r.communication_id
     WHERE c.message_type <> 'digest'
     GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION crier_analytics_reply_delta() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_deltas (hour, channel, message_type, responses, response_n, response_s)
    SELECT date_trunc('hour', c.created_at, 'UTC'), COALESCE(c.channel, 'none'), c.message_type,
           count(*), count(c.sent_at),
           COALESCE(sum(EXTRACT(EPOCH FROM r.received_at - c.sent_at)::float8), 0)
      FROM new_rows r
      JOIN communications c ON c.id = r.communication_id
     WHERE r.keyword IS NULL AND c.message_type <> 'digest'
     GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE TRIGGER communication_answers_analytics AFTER INSERT ON communication_answers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crier_analytics_response_delta();
CREATE TRIGGER inbound_messages_analytics AFTER INSERT ON inbound_messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crier_analytics_reply_delta();

-- The rows already there when this migration runs.
INSERT INTO analytics_deltas
SELECT date_trunc('hour', created_at, 'UTC'), COALESCE(channel, 'none'), message_type,
       count(*), count(sent_at),
       count(*) FILTER (WHERE delivered_at IS NOT NULL OR opened_at IS NOT NULL
                        OR clicked_at IS NOT NULL),
       count(*) FILTER (WHERE opened_at IS NOT NULL OR clicked_at IS NOT NULL),
       count(clicked_at), count(*) FILTER (WHERE status IN ('failed', 'bounced')),
       count(*) FILTER (WHERE channel_attempt_base > 0),
       count(*) FILTER (WHERE sent_at IS NOT NULL AND delivered_at IS NOT NULL),
       COALESCE(sum(EXTRACT(EPOCH FROM delivered_at - sent_at)::float8), 0), 0, 0, 0
  FROM communications WHERE message_type <> 'digest'
 GROUP BY 1, 2, 3;
INSERT INTO analytics_deltas (hour, channel, message_type, responses, response_n, response_s)
SELECT date_trunc('hour', c.created_at, 'UTC'), COALESCE(c.channel, 'none'), c.message_type,
       count(*), count(c.sent_at), COALESCE(sum(EXTRACT(EPOCH FROM r.at - c.sent_at)::float8), 0)
  FROM (SELECT communication_id, answered_at AS at FROM communication_answers
        UNION ALL
        SELECT communication_id, received_at FROM inbound_messages
         WHERE keyword IS NULL AND communication_id IS NOT NULL) r
  JOIN communications c ON c.id = r.communication_id
 WHERE c.message_type <> 'digest'
 GROUP BY 1, 2, 3;
