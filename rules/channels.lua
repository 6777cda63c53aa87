-- channels.lua: which channels may carry a message, best first.
--
-- select(msg, client) returns {channels = {...}, why = "..."} with every
-- channel the client can be reached on, in the order to try them, or
-- {skip = "reason"} when there is none.
--
-- urgency(msg) returns the urgency of a message whose request gave none
-- (msg.urgency is then absent): the seed's trigger points say how urgent
-- each type is.
--
-- The seed's "Decision Logic" and "Workflow Trigger Points":
--   * a channel the workflow asks for (msg.preferred_channel) comes first;
--   * CRITICAL + WhatsApp preferred -> WhatsApp; CRITICAL otherwise -> SMS;
--   * then the message type's own channels (detailed information such as
--     budgets and vendors -> email first; errors -> SMS first), the ones the
--     client chose first, in the client's order (a client who prefers
--     WhatsApp gets vendor options there, but a budget still by email; the
--     default list, email alone, is no choice);
--   * then the client's other preferred channels, then whatever else is left;
--   * a channel the client opted out of, has no consent for or no contact
--     for is skipped and the next one takes its place; so is email when the
--     client's address hard-bounced (client.email_suppressed: the address
--     does not exist, and crier will not send to it).

-- Workflow Trigger Points: primary and secondary channel per message type.
-- "reminder" has no trigger point; the seed gives it an SMS template, so it
-- goes by email with SMS second, like a selection confirmation.
local TYPE_CHANNELS = {
    welcome = { "email" },
    budget_summary = { "email" },
    vendor_options = { "email", "whatsapp" },
    selection_confirmation = { "email", "sms" },
    blueprint_delivery = { "email", "whatsapp" },
    error_notification = { "sms", "email" },
    reminder = { "email", "sms" },
    -- the confirmation of a preferences change goes where the client now
    -- prefers to be reached
    preferences_updated = { "email", "sms", "whatsapp" },
}
local DEFAULT_CHANNELS = { "email" } -- any other message type

-- Workflow Trigger Points: an error needs the client now; vendor options
-- and the blueprint hold the workflow up until the client acts on them.
local TYPE_URGENCY = {
    error_notification = "critical",
    vendor_options = "high",
    blueprint_delivery = "high",
}

function urgency(msg)
    return TYPE_URGENCY[msg.type] or "normal"
end

local ALL = { "email", "sms", "whatsapp" }

-- The client's opt-out field per channel, so that checking one builds no
-- string.
local OPT_OUT = { email = "opt_out_email", sms = "opt_out_sms", whatsapp = "opt_out_whatsapp" }

-- Why the client cannot be sent on channel, or nil when it can. Email
-- consent is implied by giving the address; SMS and WhatsApp need an
-- explicit opt-in (TCPA, WhatsApp Business policy).
local function blocked(client, channel)
    -- A channel the engine cannot deliver on right now (not the client's
    -- doing): never pick it.
    local available = client.available
    if available and available[channel] == false then
        return "unavailable"
    end
    if client[OPT_OUT[channel] or "opt_out_" .. channel] then
        return "opt_out"
    end
    if channel == "email" then
        if not client.has_email then
            return "no_contact"
        end
        if client.email_suppressed then
            return "suppressed"
        end
        return nil
    end
    if not client.has_phone then
        return "no_contact"
    end
    local consent = client.consent
    if not (consent and consent[channel]) then
        return "no_consent"
    end
    return nil
end

local function whatsapp_preferred(msg, client)
    if msg.preferred_channel == "whatsapp" then
        return true
    end
    local prefs = client.preferred_channels
    return prefs and prefs[1] == "whatsapp" or false
end

-- Whether the client chose its channels: the seed's default list, email
-- alone, is what every client has until it says otherwise, and leaves the
-- message type's order as it is.
local function chosen(prefs)
    return prefs ~= nil and prefs[1] ~= nil and (prefs[1] ~= "email" or prefs[2] ~= nil)
end

-- Appends ch to order unless it is nil or already there (a handful of
-- channels: a scan is cheaper than a set).
local function add(order, ch)
    if not ch then
        return
    end
    for i = 1, #order do
        if order[i] == ch then
            return
        end
    end
    order[#order + 1] = ch
end

local function add_all(order, list)
    if list then
        for _, ch in ipairs(list) do
            add(order, ch)
        end
    end
end

function select(msg, client)
    local order = {}
    add(order, msg.preferred_channel)
    if msg.urgency == "critical" then
        if whatsapp_preferred(msg, client) and not blocked(client, "whatsapp") then
            add(order, "whatsapp")
        end
        add(order, "sms")
    end
    local suited = TYPE_CHANNELS[msg.type] or DEFAULT_CHANNELS
    local prefs = client.preferred_channels
    if chosen(prefs) then
        for _, ch in ipairs(prefs) do
            for j = 1, #suited do
                if suited[j] == ch then
                    add(order, ch)
                    break
                end
            end
        end
    end
    add_all(order, suited)
    add_all(order, prefs)
    add_all(order, ALL)

    local channels, reasons = {}, nil
    for i = 1, #order do
        local ch = order[i]
        local why = blocked(client, ch)
        if why then
            reasons = reasons or {}
            reasons[#reasons + 1] = ch .. ":" .. why
        else
            channels[#channels + 1] = ch
        end
    end
    if #channels == 0 then
        -- One reason for the whole skip: no contact at all, else a channel
        -- crier cannot deliver on, else consent missing, else a suppressed
        -- address, else every reachable channel opted out.
        if not client.has_email and not client.has_phone then
            return { skip = "no_contact" }
        end
        for _, ch in ipairs(ALL) do
            if blocked(client, ch) == "unavailable" then
                return { skip = "channel_unavailable" }
            end
        end
        local reachable_not_opted = false
        for _, ch in ipairs(ALL) do
            local why = blocked(client, ch)
            if why == "no_consent" then
                reachable_not_opted = true
            end
        end
        if reachable_not_opted then
            return { skip = "no_consent" }
        end
        if blocked(client, "email") == "suppressed" then
            return { skip = "suppressed" }
        end
        return { skip = "opt_out" }
    end
    return { channels = channels, why = reasons and table.concat(reasons, ",") or "" }
end
