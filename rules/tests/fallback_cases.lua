-- What happens after a failed attempt: the seed's "Retry Strategy" (1, 5,
-- 15 minutes with up to 10% jitter, then give up) and "Fallback Mechanisms"
-- (then the next channel of the chain; nothing left: failed).
local NOW = "2026-06-03T14:00:00Z"
local MSG = { type = "vendor_options", urgency = "high" }

local function failure(attempt, category, remaining)
    return { attempt = attempt, channel = "whatsapp", category = category,
             provider_code = 0, remaining = remaining }
end

return {
    { name = "first transient failure: retry after about 1 minute",
      now = NOW, msg = MSG, on_failure = failure(1, "transient", { "sms", "email" }),
      expect = { action = "retry", retry_after_min = 54, retry_after_max = 66 } },
    { name = "second transient failure: retry after about 5 minutes",
      now = NOW, msg = MSG, on_failure = failure(2, "transient", { "sms", "email" }),
      expect = { action = "retry", retry_after_min = 270, retry_after_max = 330 } },
    { name = "third transient failure: retry after about 15 minutes",
      now = NOW, msg = MSG, on_failure = failure(3, "transient", { "sms", "email" }),
      expect = { action = "retry", retry_after_min = 810, retry_after_max = 990 } },
    { name = "retries exhausted: WhatsApp falls back to SMS",
      now = NOW, msg = MSG, on_failure = failure(4, "transient", { "sms", "email" }),
      expect = { action = "next_channel", next_channel = "sms" } },
    { name = "retries exhausted on the last channel: failed",
      now = NOW, msg = MSG, on_failure = failure(4, "transient", {}),
      expect = { action = "fail" } },
    { name = "rate limited: wait the longest delay",
      now = NOW, msg = MSG, on_failure = failure(1, "rate_limit", { "sms" }),
      expect = { action = "retry", retry_after_min = 810, retry_after_max = 990 } },
    { name = "rate limited with Retry-After: 1 h: the provider's wait wins",
      now = NOW, msg = MSG,
      on_failure = { attempt = 1, channel = "sms", category = "rate_limit", provider_code = 20429,
                     retry_after = 3600, remaining = { "email" } },
      expect = { action = "retry", retry_after_min = 3600, retry_after_max = 3600 } },
    { name = "SMS pumping block (30450, wait 30 min) on the first transient failure",
      now = NOW, msg = MSG,
      on_failure = { attempt = 1, channel = "sms", category = "transient", provider_code = 30450,
                     retry_after = 1800, remaining = { "email" } },
      expect = { action = "retry", retry_after_min = 1800, retry_after_max = 1800 } },
    { name = "permanent failure (bad number): next channel at once",
      now = NOW, msg = MSG, on_failure = failure(1, "permanent", { "email" }),
      expect = { action = "next_channel", next_channel = "email" } },
    { name = "invalid input on the last channel: failed, no retry",
      now = NOW, msg = MSG, on_failure = failure(1, "invalid_input", {}),
      expect = { action = "fail" } },
    { name = "auth failure: the provider is broken, try the next channel",
      now = NOW, msg = MSG, on_failure = failure(1, "auth_failure", { "sms" }),
      expect = { action = "next_channel", next_channel = "sms" } },
}
