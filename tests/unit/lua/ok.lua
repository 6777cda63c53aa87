-- Well-behaved rule functions: each test calls one of them after an escape
-- attempt to show the state is still usable.
local calls = 0

function add(a, b)
    return a + b
end

function echo(v)
    return v
end

-- State between calls lives in locals of the file, never in globals.
function count()
    calls = calls + 1
    return calls
end

function use_libs(s)
    return string.upper(s) .. ("x"):rep(2) .. math.floor(2.5) .. table.concat({ 1, 2 }, ",")
        .. utf8.char(233) .. select("#", 1, 2, 3)
end

function decision()
    return { primary = "email", fallback = { "sms", "whatsapp" }, send_at = 12.5, batch = false }
end

function big(n)
    local t = {}
    for i = 1, n do
        t[i] = i
    end
    return t
end

function returns_function()
    return { f = add }
end

function log_it()
    crier.log("info", "rule says hello")
    return true
end

function bad_log_level()
    crier.log("loud", "x")
end

function host_double(x)
    return crier.double(x)
end

function string_meta()
    return getmetatable("")
end

function type_error()
    local t = nil
    return t.field
end

function patterns()
    local h, m = ("09:30"):match("^(%d+):(%d+)$")
    local trimmed = string.match("  " .. string.rep("x", 150) .. "  ", "^%s*(.-)%s*$")
    local n = select(2, string.gsub(string.rep("a b ", 500), "%s+", ""))
    local words = 0
    for _ in ("email,sms,whatsapp"):gmatch("[^,]+") do words = words + 1 end
    return h .. m .. "/" .. #trimmed .. "/" .. n .. "/" .. words .. "/" .. string.find("a.b", ".", 1, true)
end
