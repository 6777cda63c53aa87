-- 004_webhooks: what provider webhooks write besides receipts on
-- communications (delivery_events) and replies (inbound_messages).

-- The WhatsApp customer-service window: a client's message opens it for 24 h
-- from when they wrote, and only inside it may free text (not a template) be
-- sent. NULL when the client never wrote to us on WhatsApp.
ALTER TABLE clients ADD COLUMN whatsapp_window_until timestamptz;

-- Receipts whose provider message id matches no communication. A
-- delivery_events row needs a communication, and an unknown id is either a
-- message another system sent from the same account or a receipt that raced
-- ahead of the send recording its id; both are kept here (never PII: ids,
-- statuses and codes only) so that they can be reconciled or explained,
-- instead of being refused (the provider would retry them for days).
CREATE TABLE unmatched_receipts (
    id                  bigserial PRIMARY KEY,
    provider            text NOT NULL CHECK (provider IN ('twilio', 'whatsapp')),
    provider_message_id text NOT NULL,
    provider_status     text NOT NULL,
    provider_code       integer,
    received_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX unmatched_receipts_msg_idx ON unmatched_receipts (provider_message_id);
-- the retention purge deletes by age
CREATE INDEX unmatched_receipts_time_idx ON unmatched_receipts (received_at);

-- How far along a communication is, for receipts that may arrive out of
-- order: a receipt moves a row only to a higher rank. Final outcomes rank
-- above everything so that nothing moves them (a failure is applied by its
-- own rule: only over 'sent' or earlier).
CREATE FUNCTION crier_status_rank(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN CASE status
        WHEN 'sent' THEN 1
        WHEN 'delivered' THEN 2
        WHEN 'opened' THEN 3
        WHEN 'clicked' THEN 4
        WHEN 'failed' THEN 9
        WHEN 'bounced' THEN 9
        WHEN 'skipped' THEN 9
        ELSE 0
    END;
