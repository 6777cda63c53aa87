-- fallback.lua: the chain of channels for a message, and what to do when a
-- delivery attempt fails.
--
-- chain(msg, client, candidates) returns {primary = "...", fallbacks = {...}}.
-- on_failure(msg, attempt, err) returns {action = "retry", after = seconds},
-- {action = "next_channel", channel = "..."} or {action = "fail", reason = "..."}.

-- Seed "Fallback Mechanisms": the example chains, word for word.
local CHAINS = {
    whatsapp = { "sms", "email" },
    email = { "sms" },
    sms = { "email" },
}

-- The secondary channel of each message type's trigger point: when the
-- primary is the type's own primary, its secondary is the first fallback.
local TYPE_PAIR = {
    vendor_options = { "email", "whatsapp" },
    selection_confirmation = { "email", "sms" },
    blueprint_delivery = { "email", "whatsapp" },
    error_notification = { "sms", "email" },
    reminder = { "email", "sms" },
    preferences_updated = { "email", "sms" },
}

local MAX_FALLBACKS = 2

-- 1 when list (a handful of channels) holds ch.
local function has(list, ch)
    for i = 1, #list do
        if list[i] == ch then
            return true
        end
    end
    return false
end

function chain(msg, client, candidates)
    local primary = candidates[1]
    local fallbacks = {}
    local function add(ch)
        if ch and ch ~= primary and #fallbacks < MAX_FALLBACKS and has(candidates, ch)
            and not has(fallbacks, ch) then
            fallbacks[#fallbacks + 1] = ch
        end
    end
    local pair = TYPE_PAIR[msg.type]
    if pair and pair[1] == primary then
        add(pair[2])
    end
    for _, ch in ipairs(CHAINS[primary] or {}) do
        add(ch)
    end
    return { primary = primary, fallbacks = fallbacks }
end

-- Seed "Retry Strategy": 1, 5, 15 minutes, then the channel is given up.
local DELAYS = { 60, 300, 900 }
local JITTER = 0.10 -- up to 10% either way, so retries do not stampede

-- A critical message (an error notification) must not sit 21 minutes on a
-- failing channel: one quick retry, then the next channel. A provider's wait
-- up to CRITICAL_WAIT is sat out instead of the quick retry; a longer one
-- sends the message on the next channel at once.
local CRITICAL_QUICK = 3
local CRITICAL_WAIT = 30

local function jittered(base)
    local spread = math.floor(base * JITTER)
    return base + math.random(-spread, spread)
end

local function next_or_fail(err, why)
    local remaining = err.remaining or {}
    if remaining[1] then
        return { action = "next_channel", channel = remaining[1], reason = why }
    end
    return { action = "fail", reason = why }
end

-- attempt: attempts made on err.channel so far, the failed one included.
-- err: {category, provider_code, channel, remaining = {channels not tried},
--       retry_after = seconds the provider asked us to wait, or nil}.
function on_failure(msg, attempt, err)
    local cat = err.category
    if cat == "transient" or cat == "rate_limit" then
        local critical = msg.urgency == "critical"
        if attempt < 1 or attempt > (critical and 1 or #DELAYS) then
            return next_or_fail(err, "retries_exhausted")
        end
        local wait = err.retry_after
        if critical and wait and wait > CRITICAL_WAIT then
            local moved = next_or_fail(err, "critical_wait_too_long")
            if moved.action == "next_channel" then
                return moved
            end
            return { action = "retry", after = math.max(1, wait), reason = cat } -- nothing else
        end
        if wait then
            -- Seed: "retry after rate limit window". The provider named it;
            -- a second more for about half of them spreads the retries
            -- without waiting long (crier counts retries in whole seconds).
            return { action = "retry", after = math.max(1, wait + math.random(0, 1)), reason = cat }
        end
        if critical then
            return { action = "retry", after = CRITICAL_QUICK, reason = cat }
        end
        return { action = "retry", after = jittered(DELAYS[attempt]), reason = cat }
    end
    if cat == "auth_failure" then
        return next_or_fail(err, "auth_failure")
    end
    -- permanent, invalid_input and anything unknown: this channel will not
    -- work for this message, retrying it is pointless.
    return next_or_fail(err, cat or "unknown")
end
