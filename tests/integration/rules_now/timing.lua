-- timing.lua for the integration tests: the shipped channel, batching and
-- fallback rules (linked from rules/), but every message is due at once, so
-- that what the tests see does not depend on the time of day they run at.
-- The shipped timing rules have their own cases in rules/tests.

function send_at(msg, client, now)
    return now, "tests: now"
end
