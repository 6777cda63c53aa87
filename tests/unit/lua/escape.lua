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
