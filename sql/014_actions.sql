-- 014_actions: a client's click answers the workflow (docs/tracking.md,
-- Actions). The answers a message offers are stored when it is rendered;
-- the first one the client clicks is the message's answer, and the only
-- one the workflow hears of.

-- The actions of a message, by their index in it (the signed link names
-- the index, never the action). A label is what the button said (a
-- vendor combination's name): the planner's words, not the client's.
CREATE TABLE communication_actions (
    communication_id uuid NOT NULL REFERENCES communications (id) ON DELETE CASCADE,
    action_index     integer NOT NULL CHECK (action_index >= 0),
    action           text NOT NULL,
    value            text NOT NULL,
    label            text NOT NULL,
    PRIMARY KEY (communication_id, action_index)
);

-- At most one answer per message: the primary key is what makes a second
-- click (of any action of it) record nothing and send no second callback.
CREATE TABLE communication_answers (
    communication_id uuid PRIMARY KEY REFERENCES communications (id) ON DELETE CASCADE,
    action_index     integer NOT NULL,
    channel          text NOT NULL,
    answered_at      timestamptz NOT NULL DEFAULT now()
);
