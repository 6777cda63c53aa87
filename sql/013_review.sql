-- 013_review: a communication whose every channel failed waits for a person
-- (seed: "log critical error and queue for manual review"), and a failure
-- receipt after "sent" goes back to the fallback rules.

-- review: NULL (nothing to review), 'open' (every channel failed; in the
-- queue), 'retried' (an operator sent it again: a new attempt chain) or
-- 'resolved' (an operator closed it, with review_note).
ALTER TABLE communications
    ADD COLUMN review text CHECK (review IN ('open', 'retried', 'resolved')),
    ADD COLUMN review_note text,
    ADD COLUMN reviewed_at timestamptz,
    -- A provider's receipt said a sent message failed (Twilio undelivered or
    -- failed, WhatsApp failed): the row is queued again with this set, and
    -- the worker that claims it asks the rules what follows instead of
    -- sending (docs/rules.md). error_category and provider_code hold the
    -- receipt's failure meanwhile.
    ADD COLUMN receipt_failure boolean NOT NULL DEFAULT false;

-- The queue as an operator reads it: the open ones, newest first.
CREATE INDEX communications_review_idx
    ON communications (created_at DESC, id DESC) WHERE review = 'open';

-- The end of a chain opens the review, whoever wrote it (a worker, a
-- receipt, the digest trigger): no path to "failed" can skip the queue. A
-- digest's own row is crier's; its members report for themselves.
CREATE FUNCTION crier_review_open() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IN ('failed', 'bounced') AND OLD.status IS DISTINCT FROM NEW.status
       AND NEW.message_type <> 'digest' THEN
        NEW.review := 'open';
        NEW.reviewed_at := NULL;
        NEW.review_note := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER communications_review_open
    BEFORE UPDATE OF status ON communications
    FOR EACH ROW EXECUTE FUNCTION crier_review_open();
