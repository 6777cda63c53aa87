-- 011_tracking: open and click tracking of email (docs/tracking.md).
--
-- The links of a tracked email, as they were before crier rewrote them to
-- its click redirect. A click token names only (communication, link index),
-- so the redirect can only ever lead to a URL stored here for that message:
-- whatever a token is changed to, it is no open redirect. Written when the
-- email is rendered (again on a retry, which renders again), gone with its
-- communication (the retention purge) and deleted by a client's erasure
-- (a URL may carry what the workflow knew of the client).
CREATE TABLE communication_links (
    communication_id uuid NOT NULL REFERENCES communications (id) ON DELETE CASCADE,
    link_index       integer NOT NULL CHECK (link_index >= 0),
    url              text NOT NULL,
    PRIMARY KEY (communication_id, link_index)
);

-- Whether the email went out with tracked links and the open pixel: only
-- those count in crm_open_rate (a message type with tracking off would
-- otherwise read as never opened).
ALTER TABLE communications ADD COLUMN tracked boolean NOT NULL DEFAULT false;

-- The open-rate sample reads the tracked emails of the last days by when
-- they were sent.
CREATE INDEX communications_tracked_sent_idx
    ON communications (sent_at) WHERE tracked AND sent_at IS NOT NULL;
