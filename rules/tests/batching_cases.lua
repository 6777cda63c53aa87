-- The seed's "Batching Rules" and "Batch Processing": LOW only, not when
-- the last message is over 24 hours old, at most 3, a 5-minute window.
local function client(last)
    return { has_email = true, timezone = "America/New_York", last_contact_at = last }
end

return {
    { name = "LOW with a message two hours ago: batched into the day's digest",
      now = "2026-06-03T14:00:00Z", msg = { type = "reminder", urgency = "low" },
      client = client("2026-06-03T12:00:00Z"), pending = { count = 1 },
      expect = { batch = { key = "low:2026-06-04", window_seconds = 300, max_size = 3 },
                 send_at_local = "2026-06-04 09:00" } },
    { name = "LOW with the last message over 24 hours ago: not batched",
      now = "2026-06-03T14:00:00Z", msg = { type = "reminder", urgency = "low" },
      client = client("2026-06-01T12:00:00Z"),
      expect = { batch = false } },
    { name = "LOW for a client never contacted: not batched",
      now = "2026-06-03T14:00:00Z", msg = { type = "reminder", urgency = "low" },
      client = client(nil),
      expect = { batch = false } },
    { name = "LOW when 3 are already waiting: the batch is full",
      now = "2026-06-03T14:00:00Z", msg = { type = "reminder", urgency = "low" },
      client = client("2026-06-03T12:00:00Z"), pending = { count = 3 },
      expect = { batch = false } },
    { name = "HIGH is never batched",
      now = "2026-06-03T14:00:00Z", msg = { type = "vendor_options", urgency = "high" },
      client = client("2026-06-03T12:00:00Z"),
      expect = { batch = false, send_now = true } },
    { name = "CRITICAL is never batched",
      now = "2026-06-03T14:00:00Z", msg = { type = "error_notification", urgency = "critical" },
      client = client("2026-06-03T12:00:00Z"),
      expect = { batch = false } },
    { name = "NORMAL is not batched",
      now = "2026-06-03T14:00:00Z", msg = { type = "budget_summary", urgency = "normal" },
      client = client("2026-06-03T12:00:00Z"),
      expect = { batch = false } },
}
