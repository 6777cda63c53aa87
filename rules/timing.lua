-- timing.lua: when to send.
--
-- send_at(msg, client, now) returns the epoch seconds to send at and a short
-- reason. The seed's "Timing Rules" and "Timezone Handling":
--   CRITICAL  now, even inside quiet hours;
--   HIGH      now (well within the hour), unless inside quiet hours: then
--             when they end;
--   NORMAL    now during local business hours (09:00-18:00), otherwise the
--             next 09:00 local; a client who chose quiet hours of its own
--             (anything but the default 22:00-08:00) has said when not to
--             write, and that replaces business hours: now, unless inside
--             them, then when they end;
--   LOW       the daily batch slot, the next 09:00 local;
--   and nothing but CRITICAL is ever sent inside the client's quiet hours
--   (default 22:00-08:00, spanning midnight): such a time moves to their end.
-- Local times come from crier.local_fields / crier.from_local_fields, which
-- follow the zone's DST rules: a wall-clock time in a gap moves forward, one
-- in an overlap is the earlier instant.

local BUSINESS_START = 9 * 60 -- minutes after local midnight
local BUSINESS_END = 18 * 60
local BATCH_SLOT = 9 * 60
local DEFAULT_QS, DEFAULT_QE = 22 * 60, 8 * 60 -- the seed's default quiet hours

local function parse_minutes(hhmm, default)
    local h, m = tostring(hhmm or default):match("^(%d%d?):(%d%d)$")
    if not h then
        h, m = default:match("^(%d%d?):(%d%d)$")
    end
    return tonumber(h) * 60 + tonumber(m)
end

-- Clients share a handful of quiet-hour settings, so each text is parsed
-- once; the cache is emptied when full, which bounds its memory.
local MINUTES_CACHE_MAX = 64
local minutes_cache, minutes_cached = {}, 0

local function minutes(hhmm, default)
    if type(hhmm) ~= "string" then
        return parse_minutes(hhmm, default)
    end
    local key = hhmm .. "|" .. default
    local v = minutes_cache[key]
    if v == nil then
        if minutes_cached >= MINUTES_CACHE_MAX then
            minutes_cache, minutes_cached = {}, 0
        end
        v = parse_minutes(hhmm, default)
        minutes_cache[key] = v
        minutes_cached = minutes_cached + 1
    end
    return v
end

-- Quiet hours [qs, qe) in minutes of the local day; qs > qe spans midnight,
-- qs == qe means none.
local function in_quiet(mod, qs, qe)
    if qs == qe then
        return false
    elseif qs < qe then
        return mod >= qs and mod < qe
    end
    return mod >= qs or mod < qe
end

-- The first instant at or after t whose local wall clock reads hh:mm.
local function next_local(tz, t, mod)
    local year, month, day = crier.local_fields(tz, t)
    local at = crier.from_local_fields(tz, year, month, day, mod // 60, mod % 60, 0)
    if at < t then
        at = crier.from_local_fields(tz, year, month, day + 1, mod // 60, mod % 60, 0)
    end
    return at
end

local function mod_of(tz, t)
    local _, _, _, hour, min = crier.local_fields(tz, t)
    return hour * 60 + min
end

-- t, or the end of the quiet hours t falls in.
local function after_quiet(tz, t, qs, qe)
    if in_quiet(mod_of(tz, t), qs, qe) then
        return next_local(tz, t, qe), true
    end
    return t, false
end

function send_at(msg, client, now)
    local tz = client.timezone or "UTC"
    local qs = minutes(client.quiet_hours_start, "22:00")
    local qe = minutes(client.quiet_hours_end, "08:00")
    local u = msg.urgency

    if u == "critical" then
        return now, "critical: now"
    end
    local t, why
    if u == "high" then
        t, why = now, "high: now"
    elseif u == "low" then
        t, why = next_local(tz, now, BATCH_SLOT), "low: daily batch slot"
    elseif qs ~= DEFAULT_QS or qe ~= DEFAULT_QE then
        t, why = now, "normal: outside the client's quiet hours"
    else
        local mod = mod_of(tz, now)
        if mod >= BUSINESS_START and mod < BUSINESS_END then
            t, why = now, "normal: business hours"
        else
            t, why = next_local(tz, now, BUSINESS_START), "normal: next business morning"
        end
    end
    local moved
    t, moved = after_quiet(tz, t, qs, qe)
    if moved then
        why = why .. ", moved out of quiet hours"
    end
    return t, why
end
