-- 010_templates: every template version crier has rendered a message with,
-- and the version each communication was rendered with.
--
-- The seed's crm_communication_templates, with one row per version instead
-- of one per name: the templates live on disk (CRIER_TEMPLATES_DIR) and are
-- reloaded while crier runs, so the table is their history, written by the
-- delivery workers the first time a version is used (once per version:
-- each process remembers what it has recorded). A row is never changed.
--
--   template_name     the message type ("reminder")
--   channel           email, sms or whatsapp
--   version           1, 2, ... per name and channel, in order of first use
--   hash              the content hash of every file the template is made
--                     of (its own and the layouts and partials they use),
--                     as GET /v1/templates shows it
--   subject_template  the email subject's source (NULL on other channels)
--   content_template  the text body's source (email text part, SMS, WhatsApp text)
--   files             {"email/reminder.html": source, ...}: every file hashed
--   first_used_at     when the first message rendered with it was recorded
CREATE TABLE crm_communication_templates (
    template_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    template_name     text NOT NULL,
    channel           text NOT NULL CHECK (channel IN ('email', 'sms', 'whatsapp')),
    version           integer NOT NULL CHECK (version > 0),
    hash              text NOT NULL CHECK (hash ~ '^[0-9a-f]{16}$'),
    subject_template  text,
    content_template  text NOT NULL,
    files             jsonb NOT NULL,
    first_used_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (template_name, channel, hash),
    UNIQUE (template_name, channel, version)
);

-- A communication names the version it was rendered with: template_id,
-- written with its outcome beside template_version (001), the same
-- version's hash. Rows written before this file have neither. No index on
-- the column: versions are never deleted, and each index costs every
-- outcome's write.
ALTER TABLE communications
    ADD COLUMN template_id uuid REFERENCES crm_communication_templates (template_id);
