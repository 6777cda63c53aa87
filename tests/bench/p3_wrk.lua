-- P3 intake load for wrk: every request is a new communication with its own
-- client id, plan id and Idempotency-Key, so each one is a real insert.
--
--   P3_TOKEN=<workflow token> wrk -s p3_wrk.lua URL -- NONCE BODY_TEMPLATE
--
-- NONCE (hex, up to 8 digits) keeps ids of separate runs apart; the body
-- template holds @CLIENT_ID@ and @PLAN_ID@ where the ids go.

local threads = {}
local next_thread = 0

function setup(thread)
    thread:set("tid", next_thread)
    next_thread = next_thread + 1
    table.insert(threads, thread)
end

local parts = {}
local nonce = 0
local counter = 0
local token = ""

function init(args)
    nonce = tonumber(args[1], 16)
    local f = assert(io.open(args[2], "r"))
    local template = f:read("*a")
    f:close()
    -- Split once around the placeholders; requests only concatenate.
    local pos = 1
    while true do
        local s, e, name = template:find("@([A-Z_]+)@", pos)
        if not s then
            break
        end
        table.insert(parts, template:sub(pos, s - 1))
        table.insert(parts, name)
        pos = e + 1
    end
    table.insert(parts, template:sub(pos))
    token = os.getenv("P3_TOKEN") or ""
end

local function uuid(kind)
    -- version-4 shaped: nonce, thread, kind and counter make it unique
    return string.format("%08x-%04x-4%03x-8%03x-%012x", nonce, tid, kind, 0, counter)
end

function request()
    counter = counter + 1
    local ids = { CLIENT_ID = uuid(1), PLAN_ID = uuid(2) }
    local body = {}
    for i, p in ipairs(parts) do
        if i % 2 == 0 then
            body[i] = ids[p]
        else
            body[i] = p
        end
    end
    local headers = {
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. token,
        ["Idempotency-Key"] = string.format("p3-%08x-%d-%d", nonce, tid, counter),
    }
    return wrk.format("POST", "/v1/communications", headers, table.concat(body))
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "WRK requests=%d duration_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
