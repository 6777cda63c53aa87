-- batching.lua: whether a message waits to go out with others.
--
-- decide(msg, client, pending) returns {batch = true, key = "...",
-- window_seconds = 300, max_size = 3} or {batch = false, reason = "..."}.
-- pending = {count = LOW messages already waiting for this client,
-- oldest_at = epoch seconds of the oldest, or nil}; msg.send_at is the time
-- timing.send_at chose and msg.channel the first channel channels.select
-- chose. The seed's "Batching Rules" and "Batch Processing":
--   * batch LOW priority messages only (never CRITICAL, HIGH or NORMAL);
--   * a digest is an email (its only template): a LOW message whose first
--     channel is SMS or WhatsApp goes on its own, on its own chain;
--   * don't batch if the last message was more than 24 hours ago (or there
--     was none: the client should hear from us promptly then);
--   * at most 3 messages in a batch; wait up to 5 minutes for more.

local WINDOW_SECONDS = 300
local MAX_SIZE = 3
local STALE_SECONDS = 24 * 3600

function decide(msg, client, pending)
    if msg.urgency ~= "low" then
        return { batch = false, reason = "not low urgency" }
    end
    if msg.channel ~= "email" then
        return { batch = false, reason = "digests go by email only" }
    end
    local last = client.last_contact_at
    if not last or msg.now - last > STALE_SECONDS then
        return { batch = false, reason = "last message over 24 hours ago" }
    end
    if (pending.count or 0) >= MAX_SIZE then
        return { batch = false, reason = "batch full" }
    end
    -- One digest per client per local day of the send slot.
    local year, month, day = crier.local_fields(client.timezone or "UTC", msg.send_at)
    local key = string.format("low:%04d-%02d-%02d", year, month, day)
    return { batch = true, key = key, window_seconds = WINDOW_SECONDS, max_size = MAX_SIZE }
end
