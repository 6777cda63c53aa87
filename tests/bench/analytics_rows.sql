-- The rows of the analytics benchmark (tests/bench/analytics_summary.sh),
-- made in the database directly. :n communications (psql variable), spread
-- evenly over the 90 days before :'now', over 1,000 clients and 20,000
-- plans, the channels 60 % email / 25 % sms / 15 % whatsapp and six message
-- types. Each row's fate is drawn from its number (a hash, so a rerun makes
-- the same rows): 3 % still queued, 6 % failed (a quarter of them bounced),
-- the rest sent; of those sent 90 % delivered (a receipt 2 to 120 s
-- later), of those delivered 40 % opened and a quarter of those clicked;
-- 10 % went out on a fallback channel. Each sent row has its 'created',
-- 'sent' and (where it applies) 'delivered' events; 2 % of sent rows got
-- a reply and 1 % an action answer.
\set ON_ERROR_STOP 1
BEGIN;
INSERT INTO clients (id)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid
  FROM generate_series(1, 1000) AS i;

CREATE TEMP TABLE bench_src ON COMMIT DROP AS
SELECT i,
       ('10000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid AS id,
       ('00000000-0000-4000-8000-' || lpad(to_hex(1 + i % 1000), 12, '0'))::uuid AS client_id,
       ('20000000-0000-4000-8000-' || lpad(to_hex(1 + i % 20000), 12, '0'))::uuid AS plan_id,
       (ARRAY['welcome', 'budget_summary', 'vendor_options', 'payment_reminder',
              'timeline_update', 'error_notification'])[1 + (hashint4(i) & 65535) % 6] AS message_type,
       CASE WHEN (hashint4(i + 1) & 65535) % 100 < 60 THEN 'email'
            WHEN (hashint4(i + 1) & 65535) % 100 < 85 THEN 'sms' ELSE 'whatsapp' END AS channel,
       (hashint4(i + 2) & 65535) % 1000 AS fate,
       (hashint4(i + 3) & 65535) % 1000 AS engage,
       :'now'::timestamptz - make_interval(secs => (i::float8 / :n) * 90 * 86400) AS created_at
  FROM generate_series(1, :n) AS i;

INSERT INTO communications (id, plan_id, client_id, message_type, channel, status, attempts,
                            channel_attempt_base, tracked, created_at, updated_at, sent_at,
                            delivered_at, opened_at, clicked_at, failed_at, error_category)
SELECT id, plan_id, client_id, message_type, channel,
       CASE WHEN fate < 30 THEN 'queued'
            WHEN fate < 75 THEN 'failed'
            WHEN fate < 90 THEN 'bounced'
            WHEN engage >= 900 THEN 'sent'
            WHEN engage < 90 AND channel = 'email' THEN 'clicked'
            WHEN engage < 360 AND channel = 'email' THEN 'opened'
            ELSE 'delivered' END,
       CASE WHEN fate < 30 THEN 0 WHEN fate < 90 THEN 3 ELSE 1 + (fate % 10 = 0)::int END,
       CASE WHEN fate >= 90 AND fate % 10 = 0 THEN 1 ELSE 0 END,
       channel = 'email',
       created_at, created_at,
       CASE WHEN fate >= 90 THEN created_at + interval '1 second' END,
       CASE WHEN fate >= 90 AND engage < 900
            THEN created_at + make_interval(secs => 3 + engage % 119) END,
       CASE WHEN fate >= 90 AND engage < 360 AND channel = 'email'
            THEN created_at + make_interval(secs => 600 + engage * 10) END,
       CASE WHEN fate >= 90 AND engage < 90 AND channel = 'email'
            THEN created_at + make_interval(secs => 700 + engage * 10) END,
       CASE WHEN fate BETWEEN 30 AND 89 THEN created_at + interval '20 minutes' END,
       CASE WHEN fate BETWEEN 30 AND 74 THEN 'permanent' END
  FROM bench_src;

INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel, attempt,
                             event_timestamp)
SELECT id, 'created', 'queued', channel, 0, created_at FROM bench_src
UNION ALL
SELECT id, 'sent', 'sent', channel, 1, created_at + interval '1 second'
  FROM bench_src WHERE fate >= 90
UNION ALL
SELECT id, 'receipt', 'delivered', channel, 1, created_at + make_interval(secs => 3 + engage % 119)
  FROM bench_src WHERE fate >= 90 AND engage < 900
UNION ALL
SELECT id, 'failed', 'failed', channel, 3, created_at + interval '20 minutes'
  FROM bench_src WHERE fate BETWEEN 30 AND 89;

INSERT INTO inbound_messages (channel, provider_message_id, client_id, communication_id, received_at)
SELECT channel, 'bench-' || i, client_id, id, created_at + make_interval(secs => 900 + engage)
  FROM bench_src WHERE fate >= 90 AND channel <> 'email' AND engage % 50 = 7;

INSERT INTO communication_answers (communication_id, action_index, channel, answered_at)
SELECT id, 0, channel, created_at + make_interval(secs => 1200 + engage)
  FROM bench_src WHERE fate >= 90 AND engage % 100 = 3;
COMMIT;
ANALYZE;
