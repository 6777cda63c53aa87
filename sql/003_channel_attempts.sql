-- Attempts count per channel: when a failed channel is given up for the next
-- one in the chain, the fallback policy sees the new channel's attempts from
-- 1 again (its retry schedule is per channel), while `attempts` keeps counting
-- every attempt of the communication (it is the completion fence).
ALTER TABLE communications
    ADD COLUMN channel_attempt_base integer NOT NULL DEFAULT 0;
