-- 005_bound_tokens: ciphertexts bound to their place, and no client text in
-- clear outside the encrypted columns.
--
-- Tokens are now "v2.<key id>.<base64>": AES-256-GCM whose associated data
-- names the table, the column and the row's primary key, so a token copied
-- to another row, column or table no longer decrypts. The rows written
-- before this migration hold "v1." tokens (bound to the key id only); they
-- are rewritten as v2 by the step `crier migrate` runs after the SQL files,
-- which needs CRIER_ENCRYPTION_KEY (SQL cannot encrypt). crier reads only
-- v2 tokens, so that step must have run before `crier serve` starts.

-- The rendered subject holds the client's name ("Welcome to Planiva, <name>:
-- ..."). It is stored encrypted, bound to ("communications", "subject", id).
-- The clear column stays only for the rows written before this migration:
-- the step after the SQL encrypts each one into subject_enc and sets it to
-- NULL, and nothing writes it any more.
ALTER TABLE communications ADD COLUMN subject_enc text;

-- A callback's body holds the client's words (a reply's text). It is kept
-- encrypted, bound to ("workflow_callbacks", "payload", id), until it is
-- delivered; payload holds the same object without the text (ids, channel,
-- times), and is all that stays once the callback is delivered.
ALTER TABLE workflow_callbacks ADD COLUMN payload_enc text;

-- What of a callback's payload may stay in clear: the event and the ids
-- (the type, which message, which client, on which channel, when), never a
-- text. The sender writes it over the payload once the callback is
-- delivered, whoever wrote the row; anything but an object becomes {}.
CREATE FUNCTION crier_callback_bare(payload jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(payload) = 'object' THEN
        COALESCE((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(payload) e
                  WHERE e.key IN ('type', 'inbound_message_id', 'client_id', 'communication_id',
                                  'channel', 'provider_message_id', 'received_at')),
                 '{}'::jsonb)
        ELSE '{}'::jsonb END;

-- Members follow their digest's outcome, as in 002_digests, but no longer
-- take a copy of the digest's subject: a token is bound to its own row and
-- SQL cannot re-encrypt it for another. A member's subject is its digest's
-- (batch_id names it).
CREATE OR REPLACE FUNCTION crier_digest_members() RETURNS trigger
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
            updated_at = now()
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
