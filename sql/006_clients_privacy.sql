-- 006_clients_privacy: the consent ledger, where an audit entry came from,
-- and a client's communications newest first.

-- Every grant or revocation of a channel, whatever made it: the API (a
-- client object or PUT /v1/clients), the preferences API, a STOP/START
-- keyword, a provider's opt-out code, an unsubscribe link or the
-- preference page. A row holds no PII: the client's id, the channel, what
-- happened, by what and by whom (an API token's label, never the token).
-- It stays when the client is erased (it is the proof that consent was
-- withdrawn) and goes with the client row when the retention job removes
-- what is left of an erased client.
CREATE TABLE consent_ledger (
    id        bigserial PRIMARY KEY,
    client_id uuid NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    channel   text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    action    text NOT NULL CHECK (action IN ('granted', 'revoked')),
    source    text NOT NULL CHECK (source IN ('api', 'preferences', 'keyword', 'provider_code',
                                              'unsubscribe_link', 'preference_page', 'erasure',
                                              'system')),
    actor     text,
    at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX consent_ledger_client_idx ON consent_ledger (client_id, at, id);

-- The ledger is written by triggers so that no path that changes consent
-- can forget it. The path says what it is with two settings local to its
-- transaction (set_config(..., true)): crier.consent_source (one of the
-- sources above; 'system' when unset) and crier.actor (a token's label).
-- Consent (clients.consent_*) and opt-outs (client_preferences.opt_out_*)
-- are both a channel's permission: a consent turned on or an opt-out
-- turned off grants it, the reverse revokes it. A new client's consent
-- counts from "not given", so only an explicit grant makes a row.
CREATE FUNCTION crier_consent_note(client uuid, channel text, granted boolean) RETURNS void
    LANGUAGE sql AS $$
    INSERT INTO consent_ledger (client_id, channel, action, source, actor)
    VALUES (client, channel, CASE WHEN granted THEN 'granted' ELSE 'revoked' END,
            COALESCE(NULLIF(current_setting('crier.consent_source', true), ''), 'system'),
            NULLIF(current_setting('crier.actor', true), ''))
$$;

CREATE FUNCTION crier_consent_clients() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.consent_email THEN PERFORM crier_consent_note(NEW.id, 'email', true); END IF;
        IF NEW.consent_sms THEN PERFORM crier_consent_note(NEW.id, 'sms', true); END IF;
        IF NEW.consent_whatsapp THEN PERFORM crier_consent_note(NEW.id, 'whatsapp', true); END IF;
        RETURN NULL;
    END IF;
    IF NEW.consent_email IS DISTINCT FROM OLD.consent_email THEN
        PERFORM crier_consent_note(NEW.id, 'email', NEW.consent_email);
    END IF;
    IF NEW.consent_sms IS DISTINCT FROM OLD.consent_sms THEN
        PERFORM crier_consent_note(NEW.id, 'sms', NEW.consent_sms);
    END IF;
    IF NEW.consent_whatsapp IS DISTINCT FROM OLD.consent_whatsapp THEN
        PERFORM crier_consent_note(NEW.id, 'whatsapp', NEW.consent_whatsapp);
    END IF;
    RETURN NULL;
END
$$;

-- The WHEN clauses keep the common case (a request repeating what is
-- stored) from calling a function at all.
CREATE TRIGGER clients_consent_ledger_new AFTER INSERT ON clients FOR EACH ROW
    WHEN (NEW.consent_email OR NEW.consent_sms OR NEW.consent_whatsapp)
    EXECUTE FUNCTION crier_consent_clients();
CREATE TRIGGER clients_consent_ledger AFTER UPDATE ON clients FOR EACH ROW
    WHEN ((OLD.consent_email, OLD.consent_sms, OLD.consent_whatsapp)
          IS DISTINCT FROM (NEW.consent_email, NEW.consent_sms, NEW.consent_whatsapp))
    EXECUTE FUNCTION crier_consent_clients();

CREATE FUNCTION crier_consent_opt_outs() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.opt_out_email THEN PERFORM crier_consent_note(NEW.client_id, 'email', false); END IF;
        IF NEW.opt_out_sms THEN PERFORM crier_consent_note(NEW.client_id, 'sms', false); END IF;
        IF NEW.opt_out_whatsapp THEN
            PERFORM crier_consent_note(NEW.client_id, 'whatsapp', false);
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.opt_out_email IS DISTINCT FROM OLD.opt_out_email THEN
        PERFORM crier_consent_note(NEW.client_id, 'email', NOT NEW.opt_out_email);
    END IF;
    IF NEW.opt_out_sms IS DISTINCT FROM OLD.opt_out_sms THEN
        PERFORM crier_consent_note(NEW.client_id, 'sms', NOT NEW.opt_out_sms);
    END IF;
    IF NEW.opt_out_whatsapp IS DISTINCT FROM OLD.opt_out_whatsapp THEN
        PERFORM crier_consent_note(NEW.client_id, 'whatsapp', NOT NEW.opt_out_whatsapp);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER client_preferences_consent_ledger_new AFTER INSERT ON client_preferences
    FOR EACH ROW WHEN (NEW.opt_out_email OR NEW.opt_out_sms OR NEW.opt_out_whatsapp)
    EXECUTE FUNCTION crier_consent_opt_outs();
CREATE TRIGGER client_preferences_consent_ledger AFTER UPDATE ON client_preferences
    FOR EACH ROW
    WHEN ((OLD.opt_out_email, OLD.opt_out_sms, OLD.opt_out_whatsapp)
          IS DISTINCT FROM (NEW.opt_out_email, NEW.opt_out_sms, NEW.opt_out_whatsapp))
    EXECUTE FUNCTION crier_consent_opt_outs();

-- The address a PII read, export or erasure came from (the peer of the
-- HTTP connection; 'cli' for a command run on the host).
ALTER TABLE audit_log ADD COLUMN address text;

-- A client's communications newest first, for the paged list.
CREATE INDEX communications_client_newest_idx ON communications (client_id, created_at DESC, id DESC);

-- What a decision reads of a client through the preference cache (its
-- contacts' presence, consent, time zone, preferred channels, quiet hours
-- and opt-outs) carries a version that moves with every change to it,
-- whoever makes it. A cached copy names the version it was read at, and
-- the decision path, which reads the client's activity from PostgreSQL
-- anyway, reads the version with it: a copy that is not current is not
-- used, so no lost or late write to the cache can make a decision ignore
-- an opt-out.
CREATE SEQUENCE crier_prefs_version;
ALTER TABLE clients ADD COLUMN prefs_version bigint NOT NULL DEFAULT 0;

CREATE FUNCTION crier_prefs_version_bump() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    NEW.prefs_version := nextval('crier_prefs_version');
    RETURN NEW;
END
$$;

CREATE TRIGGER clients_prefs_version BEFORE UPDATE ON clients FOR EACH ROW
    WHEN ((OLD.consent_email, OLD.consent_sms, OLD.consent_whatsapp, OLD.timezone,
           OLD.email_enc IS NULL, OLD.phone_enc IS NULL, OLD.erased_at IS NULL)
          IS DISTINCT FROM
          (NEW.consent_email, NEW.consent_sms, NEW.consent_whatsapp, NEW.timezone,
           NEW.email_enc IS NULL, NEW.phone_enc IS NULL, NEW.erased_at IS NULL))
    EXECUTE FUNCTION crier_prefs_version_bump();

CREATE FUNCTION crier_prefs_version_of_client() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE clients SET prefs_version = nextval('crier_prefs_version')
    WHERE id = NEW.client_id;
    RETURN NULL;
END
$$;

-- A new row with the defaults changes nothing a decision sees (a client
-- without one has the same defaults), and a deleted row needs nothing
-- either: only an erasure deletes one, and erasure moves the client's own
-- version.
CREATE TRIGGER client_preferences_version AFTER INSERT ON client_preferences FOR EACH ROW
    WHEN (NEW.preferred_channels <> '["email"]'::jsonb OR NEW.quiet_hours_start <> '22:00'
          OR NEW.quiet_hours_end <> '08:00' OR NEW.opt_out_email OR NEW.opt_out_sms
          OR NEW.opt_out_whatsapp)
    EXECUTE FUNCTION crier_prefs_version_of_client();
CREATE TRIGGER client_preferences_version_update AFTER UPDATE ON client_preferences
    FOR EACH ROW
    WHEN ((OLD.preferred_channels, OLD.quiet_hours_start, OLD.quiet_hours_end,
           OLD.opt_out_email, OLD.opt_out_sms, OLD.opt_out_whatsapp)
          IS DISTINCT FROM
          (NEW.preferred_channels, NEW.quiet_hours_start, NEW.quiet_hours_end,
           NEW.opt_out_email, NEW.opt_out_sms, NEW.opt_out_whatsapp))
    EXECUTE FUNCTION crier_prefs_version_of_client();
