-- 012_status_callbacks: the workflow hears every step of a communication
-- (docs/callbacks.md), not only the client's replies.

-- The order of the callbacks: one sequence over all rows. A communication's
-- status changes are serialised by its row lock, so the callbacks of one
-- communication get increasing numbers in the order its statuses were
-- reached; the receiver orders by seq, whatever order the sends arrive in
-- (a retried callback arrives after later ones).
ALTER TABLE workflow_callbacks ADD COLUMN seq bigserial;

-- The receiver's ordering and de-duplication keys, and what status events
-- and actions carry (never a client's text), stay in clear once delivered.
CREATE OR REPLACE FUNCTION crier_callback_bare(payload jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN jsonb_typeof(payload) = 'object' THEN
        COALESCE((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each(payload) e
                  WHERE e.key IN ('type', 'inbound_message_id', 'client_id', 'communication_id',
                                  'channel', 'provider_message_id', 'received_at', 'plan_id',
                                  'message_type', 'status', 'at', 'action', 'value',
                                  'error_category', 'provider_code', 'skip_reason')),
                 '{}'::jsonb)
        ELSE '{}'::jsonb END;

-- Which status events a session writes: its setting crier.callback_events,
-- "all" or a comma list of event names; unset or empty writes none. crier
-- sets it on each of its connections from CRIER_CALLBACK_EVENTS, and to
-- empty while no callback URL is configured, so a deployment without a
-- workflow does not pile up rows nobody will read. Any other session (an
-- operator's psql) writes none.
CREATE FUNCTION crier_callback_wanted(event text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN COALESCE(current_setting('crier.callback_events', true), '') = 'all'
        OR event = ANY (string_to_array(COALESCE(current_setting('crier.callback_events', true), ''),
                                        ','));

-- One callback per status a communication reaches that the workflow acts
-- on. A digest's own row is crier's: its members, moved by the digest
-- trigger, are the workflow's messages and report for themselves. The
-- sandbox records sent and delivered in one step; the workflow still hears
-- both, in that order.
CREATE FUNCTION crier_status_callbacks() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    events text[];
    ev text;
    n integer := 0;
BEGIN
    IF NEW.message_type = 'digest' OR NEW.status NOT IN
        ('sent', 'delivered', 'opened', 'clicked', 'failed', 'bounced', 'skipped') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    events := CASE WHEN TG_OP = 'UPDATE' AND OLD.status IN ('pending', 'queued', 'sending', 'batched')
                        AND NEW.status = 'delivered'
                   THEN ARRAY['sent', 'delivered'] ELSE ARRAY[NEW.status] END;
    FOREACH ev IN ARRAY events LOOP
        CONTINUE WHEN NOT crier_callback_wanted(ev);
        INSERT INTO workflow_callbacks (id, communication_id, event_type, payload)
        VALUES (gen_random_uuid(), NEW.id, ev, jsonb_strip_nulls(jsonb_build_object(
            'type', ev, 'plan_id', NEW.plan_id, 'client_id', NEW.client_id,
            'communication_id', NEW.id, 'message_type', NEW.message_type,
            'channel', NEW.channel, 'status', ev, 'at', crier_iso(now()),
            'error_category', CASE WHEN ev IN ('failed', 'bounced') THEN NEW.error_category END,
            'provider_code', CASE WHEN ev IN ('failed', 'bounced') THEN NEW.provider_code END,
            'skip_reason', CASE WHEN ev = 'skipped' THEN NEW.skip_reason END)));
        n := n + 1;
    END LOOP;
    IF n > 0 THEN
        PERFORM pg_notify('crier_callbacks', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER communications_status_callbacks
    AFTER INSERT OR UPDATE OF status ON communications
    FOR EACH ROW EXECUTE FUNCTION crier_status_callbacks();
