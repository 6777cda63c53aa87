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

-- Plain finds take memmem's linear path: a long needle is quick, and the
-- answers are the library's.
function long_plain_find()
    local hay = string.rep("a", 2000000)
    local r1 = tostring(string.find(hay, string.rep("a", 1000000) .. "b", 1, true))
    local r2 = tostring(string.find(hay .. "b", string.rep("a", 1000000) .. "b", 1, true))
    return r1 .. "/" .. r2
end
function plain_find_semantics()
    local out = {}
    local cases = { {"hello", "l"}, {"hello", "l", 4}, {"hello", "", 10}, {"hello", "", 6},
                    {"hello", "lo", -2}, {"hello", "h", -100}, {"a.b", ".", 1, true}, {"a\0b", "\0"} }
    for _, c in ipairs(cases) do
        local a, b = string.find(c[1], c[2], c[3], c[4])
        out[#out + 1] = tostring(a) .. ":" .. tostring(b)
    end
    return table.concat(out, " ")
end
function xpcall_semantics()
    local ok, v = xpcall(function(a, b) return a + b end, function(e) return "h:" .. e end, 2, 3)
    local ok2, v2 = xpcall(function() error("boom", 0) end, function(e) return "h:" .. e end)
    local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
    local y = co(1)
    local z = co(10)
    local closed = {}
    local c2 = coroutine.create(function()
        local x <close> = setmetatable({}, { __close = function() closed[#closed + 1] = "ran" end })
        coroutine.yield()
    end)
    coroutine.resume(c2)
    local cok = coroutine.close(c2)
    return table.concat({ tostring(ok), v, tostring(ok2), v2, y, z, tostring(cok), closed[1] or "-" }, ",")
end
function sort_and_concat()
    local t = { "pear", "apple", "fig" }
    table.sort(t)
    table.insert(t, "kiwi")
    table.remove(t, 1)
    return table.concat(t, ",") .. "/" .. string.rep("ab", 3, "-") .. "/" .. utf8.len("h\u{e9}") ..
        "/" .. select("#", table.unpack({ 1, 2, 3 })) .. "/" .. table.concat(table.move({ 1, 2 }, 1, 2, 2, { 9 }), "")
end
