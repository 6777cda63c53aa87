-- Each function tries one way out of the sandbox or past its budgets.
-- Every one of them must fail, and the state must keep working afterwards.

function os_execute() return os.execute("true") end
function io_open() return io.open("x", "w") end
function require_os() return require("os") end
function load_text() return load("return 1")() end
function loadfile_it() return loadfile("x") end
function dofile_it() return dofile("x") end
function string_dump() return string.dump(function() end) end
function debug_getinfo() return debug.getinfo(1) end
function package_path() return package.path end
function collect() return collectgarbage("count") end
function print_it() print("x") end
function rawset_global() rawset(_G, "x", 1) end
function setmetatable_global() return setmetatable(_G, {}) end
function string_metatable_index() getmetatable("").__index = { upper = function() return "pwned" end } end
function string_library_write() string.upper = function() return "pwned" end end
function string_library_add() string.evil = 1 end
function new_global() brand_new_global = 1 end
function global_via_G() _G.brand_new_global = 1 end
function read_undefined() return undefined_thing end
function gc_finalizer() return setmetatable({}, { __gc = function() while true do end end }) end

function loop() while true do end end
-- library work is charged to the instruction budget (the VM's own
-- instructions only to the clock)
function rep_loop()
    local n = 0
    while true do n = n + #string.rep("x", 64, ",") end
end
function pcall_loop() while true do pcall(function() while true do end end) end end
function xpcall_loop()
    while true do xpcall(function() while true do end end, function(e) return e end) end
end
function coroutine_loop() coroutine.wrap(function() while true do end end)() end
function coroutine_resume_loop()
    local co = coroutine.create(function() while true do end end)
    while true do coroutine.resume(co) end
end
function pcall_memory_loop() while true do pcall(string.rep, "x", 1e9) end end

function string_bomb() return #string.rep("x", 1e9) end
function table_bomb() local t = {} for i = 1, 1e9 do t[i] = i end return #t end
function concat_bomb() local s = "x" while true do s = s .. s end end
function recursion() local function f(n) return f(n + 1) + 1 end return f(1) end

-- Pattern matching runs in C, out of the count hook's reach.
function pattern_bomb() return string.find(string.rep("a", 300), string.rep("a-", 4) .. "b") end
function pattern_bomb_method() return (string.rep("a", 5000)):match(".-.-.-b") end
function gmatch_bomb() for w in string.rep("a", 3000):gmatch("(a*)(a*)b") do end end

-- Code that Lua would run with hooks off: the handler of an xpcall whose
-- protected call the budget stopped, and the to-be-closed handlers of a
-- coroutine the budget stopped.
function xpcall_handler_loop()
    return xpcall(function() while true do end end, function(e) while true do end end)
end
function xpcall_handler_count()
    return xpcall(function() while true do end end,
                  function(e) local n = 0 for i = 1, 3e8 do n = n + 1 end return n end)
end
local function looping_closer()
    return setmetatable({}, { __close = function() while true do end end })
end
function close_handler_loop()
    local co = coroutine.create(function()
        local guard <close> = looping_closer()
        while true do end
    end)
    coroutine.resume(co)
    return coroutine.close(co)
end
function wrap_close_handler_loop()
    return pcall(coroutine.wrap(function()
        local guard <close> = looping_closer()
        while true do end
    end))
end
local stopped
function stop_a_coroutine()
    stopped = coroutine.create(function()
        local guard <close> = looping_closer()
        while true do end
    end)
    coroutine.resume(stopped)
end
function close_stopped_later()
    local ok, why = coroutine.close(stopped)
    return tostring(ok) .. ": " .. tostring(why)
end

-- Single C calls the count hook never sees.
function rep_empty() return #string.rep("", math.maxinteger) end
function rep_method() return #(""):rep(1e15) end
function rep_sep_only() return #string.rep("", 1e12, "") end
function table_move() return table.move({}, 1, 1e15, 2, {}) end
function sort_bomb()
    local big, t = string.rep("x", 2 * 1024 * 1024), {}
    for i = 1, 20000 do t[i] = big end
    table.sort(t)
end
function concat_c_index() return table.concat(setmetatable({}, { __index = rawlen }), "", 1, 1e15) end
function remove_huge_len() return table.remove(setmetatable({}, { __len = function() return 1e15 end }), 1) end
function insert_huge_len() return table.insert(setmetatable({}, { __len = function() return 1e15 end }), 1, 1) end
function unpack_huge() return select("#", table.unpack({}, 1, 1e7)) end
function find_long_pattern()
    return string.find(string.rep("a", 600000), string.rep("a", 300000) .. "b.")
end
function match_long_literal() return string.match(string.rep("a", 200000), string.rep("a", 100000) .. "b") end
function gsub_long_literal() return string.gsub(string.rep("a", 600000), string.rep("a", 300000) .. "b", "") end
function utf8_len_loop() local s = string.rep("\u{e9}", 1e6) while true do utf8.len(s) end end
function format_loop() local s = string.rep("x", 1e6) while true do string.format("%s%s", s, s) end end
function huge_error() error(string.rep("x", 3 * 1024 * 1024)) end
function slow_host() crier.nap() return 1 end
