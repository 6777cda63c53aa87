-- 008_retention: the indexes the retention purge (`crier purge`, and the
-- daily job of `crier serve`) needs so that each of its batches reads only
-- the rows it deletes.
--
-- communications (created_at), delivery_events (event_timestamp),
-- unmatched_receipts (received_at) and clients (erased_at) have theirs
-- since 001 and 004.

-- Inbound messages go by age.
CREATE INDEX inbound_messages_received_idx ON inbound_messages (received_at);

-- Finished callbacks go by age; pending ones never do.
CREATE INDEX workflow_callbacks_finished_idx
    ON workflow_callbacks (created_at) WHERE state IN ('delivered', 'failed');

-- Deleting a communication cascades to its callbacks and sets its inbound
-- messages' communication_id to NULL: without these, every deleted row would
-- scan both tables to find what refers to it. The purge also looks a
-- communication's unsent callbacks up by it.
CREATE INDEX workflow_callbacks_comm_idx
    ON workflow_callbacks (communication_id) WHERE communication_id IS NOT NULL;
CREATE INDEX inbound_messages_comm_idx
    ON inbound_messages (communication_id) WHERE communication_id IS NOT NULL;
