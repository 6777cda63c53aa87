-- 002_digests: LOW messages merged into one digest communication.
--
-- A digest is an ordinary communications row (message_type 'digest') that
-- the queue claims and sends like any other. Its members are the merged
-- requests: rows with status 'batched' and batch_id = the digest's id, which
-- the claim never takes (it only takes 'pending' and 'queued' rows).

-- On a digest: the batching rule's key, how many members it holds so far
-- and how many it may hold. NULL on every other row.
ALTER TABLE communications
    ADD COLUMN batch_key  text,
    ADD COLUMN batch_size integer CHECK (batch_size >= 0),
    ADD COLUMN batch_max  integer CHECK (batch_max >= 1);

-- At most one open digest per client and key. Two intake writers (of one
-- process or of several) that open the same digest at once collide here:
-- the second one's INSERT ... ON CONFLICT DO NOTHING waits for the first to
-- commit and then joins its row instead. A digest stops being open when it
-- is full (status 'queued') or claimed ('sending'), so the next LOW message
-- opens a new one. It also serves the intake's "pending for this client".
CREATE UNIQUE INDEX communications_open_digest_idx
    ON communications (client_id, batch_key)
    WHERE message_type = 'digest' AND status = 'pending';

-- Members follow their digest's outcome. The trigger runs inside the very
-- UPDATE that records the digest's outcome, which the queue fences on the
-- claimed attempt: the members change in the same transaction, exactly when
-- the digest's own change is applied, and never for a stale attempt. A
-- retry (back to 'queued') leaves them 'batched'. Receipts that move the
-- digest later (delivered, opened, bounced) reach the members the same way.
CREATE FUNCTION crier_digest_members() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    WITH m AS (
        UPDATE communications SET status = NEW.status, channel = NEW.channel,
            sent_at = COALESCE(sent_at, NEW.sent_at),
            delivered_at = COALESCE(delivered_at, NEW.delivered_at),
            opened_at = COALESCE(opened_at, NEW.opened_at),
            clicked_at = COALESCE(clicked_at, NEW.clicked_at),
            failed_at = NEW.failed_at, error_category = NEW.error_category,
            error_message = NEW.error_message, provider_code = NEW.provider_code,
            subject = COALESCE(subject, NEW.subject), updated_at = now()
        WHERE batch_id = NEW.id AND status IS DISTINCT FROM NEW.status
        RETURNING id)
    INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,
                                 attempt, provider_response, error_details)
    SELECT m.id, t.event_type, NEW.status, NEW.channel, NEW.attempts,
           jsonb_build_object('digest_id', NEW.id), NEW.error_message
    FROM m CROSS JOIN unnest(
        -- the sandbox records sent and delivered in one step, as it does
        -- for the digest itself
        CASE WHEN OLD.status = 'sending' AND NEW.status = 'delivered'
             THEN ARRAY['sent', 'delivered'] ELSE ARRAY[NEW.status] END)
        WITH ORDINALITY AS t(event_type, ord)
    ORDER BY m.id, t.ord;
    RETURN NULL;
END
$$;

CREATE TRIGGER communications_digest_members
    AFTER UPDATE OF status ON communications
    FOR EACH ROW
    WHEN (NEW.message_type = 'digest' AND NEW.status IS DISTINCT FROM OLD.status
          AND NEW.status IN ('sent', 'delivered', 'opened', 'clicked', 'failed', 'bounced'))
    EXECUTE FUNCTION crier_digest_members();
