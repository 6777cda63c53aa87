-- 009_suppressions: the email suppression list, kept by blind index.
--
-- An address whose mail server answered a send with a permanent "this
-- mailbox does not exist" (a hard bounce: SMTP 5yz to RCPT or DATA with
-- the enhanced code 5.1.1, 5.1.2, 5.1.3, 5.1.6, 5.1.10 or 5.2.1; see
-- smtp_hard_bounce in src/channel/smtp.c) is not mailed again. The entry
-- is keyed by the blind index of the address (clients.email_bidx, HMAC
-- under the blind index key), so the table holds no address: a client
-- whose address is suppressed is any client whose stored index equals the
-- key, and a client that is given another address has another index and
-- is mailed again. The statuses 'bounced' and 'skipped' exist since 001.
CREATE TABLE email_suppressions (
    email_bidx       text PRIMARY KEY,
    reason           text NOT NULL CHECK (reason IN ('hard_bounce')),
    -- the reply that suppressed it: "550" and "5.1.1"
    smtp_code        integer,
    enhanced_code    text,
    -- the message that bounced; cleared when it is purged, and by the
    -- client's erasure (so that nothing links the entry to a client)
    communication_id uuid REFERENCES communications (id) ON DELETE SET NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- A deleted communication (the retention purge) finds its entry through it.
CREATE INDEX email_suppressions_comm_idx
    ON email_suppressions (communication_id) WHERE communication_id IS NOT NULL;

-- A suppression changes what a decision sees of every client with that
-- address (email becomes unusable), so it moves their preference version
-- like any other change to those facts (006): a cached copy from before
-- is not used. Removing an entry by hand moves it back the same way.
CREATE FUNCTION crier_prefs_version_of_address() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients SET prefs_version = nextval('crier_prefs_version')
    WHERE email_bidx = CASE WHEN TG_OP = 'DELETE' THEN OLD.email_bidx ELSE NEW.email_bidx END;
    RETURN NULL;
END
$$;

CREATE TRIGGER email_suppressions_version AFTER INSERT OR DELETE ON email_suppressions
    FOR EACH ROW EXECUTE FUNCTION crier_prefs_version_of_address();

-- Whether a client's address is suppressed follows its address, so a new
-- address (another blind index) moves the version too; 006's trigger only
-- noticed an address appearing or going.
DROP TRIGGER clients_prefs_version ON clients;
CREATE TRIGGER clients_prefs_version BEFORE UPDATE ON clients FOR EACH ROW
    WHEN ((OLD.consent_email, OLD.consent_sms, OLD.consent_whatsapp, OLD.timezone,
           OLD.email_enc IS NULL, OLD.phone_enc IS NULL, OLD.erased_at IS NULL, OLD.email_bidx)
          IS DISTINCT FROM
          (NEW.consent_email, NEW.consent_sms, NEW.consent_whatsapp, NEW.timezone,
           NEW.email_enc IS NULL, NEW.phone_enc IS NULL, NEW.erased_at IS NULL, NEW.email_bidx))
    EXECUTE FUNCTION crier_prefs_version_bump();

-- A digest whose address is suppressed by the time it is claimed is
-- skipped there ('skipped', reason 'suppressed'; digests have no other
-- channel). Its members follow it as they follow every other outcome
-- (002), with the reason.
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
            skip_reason = CASE WHEN NEW.status = 'skipped' THEN NEW.skip_reason
                          ELSE skip_reason END,
            subject = COALESCE(subject, NEW.subject), updated_at = now()
        WHERE batch_id = NEW.id AND status IS DISTINCT FROM NEW.status
        RETURNING id)
    INSERT INTO delivery_events (communication_id, event_type, delivery_status, channel,
                                 attempt, provider_response, error_details)
    SELECT m.id, t.event_type, NEW.status, NEW.channel, NEW.attempts,
           jsonb_build_object('digest_id', NEW.id),
           CASE WHEN NEW.status = 'skipped' THEN NEW.skip_reason ELSE NEW.error_message END
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

DROP TRIGGER communications_digest_members ON communications;
CREATE TRIGGER communications_digest_members
    AFTER UPDATE OF status ON communications
    FOR EACH ROW
    WHEN (NEW.message_type = 'digest' AND NEW.status IS DISTINCT FROM OLD.status
          AND NEW.status IN ('sent', 'delivered', 'opened', 'clicked', 'failed', 'bounced',
                             'skipped'))
    EXECUTE FUNCTION crier_digest_members();
