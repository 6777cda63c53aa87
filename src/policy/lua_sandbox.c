#include "policy/lua_sandbox.h"

#include "policy/lua_guard.h"
#include "util/log.h"

#include <lauxlib.h>
#include <lualib.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Registry keys: the addresses are unique, the values unused. */
static const char lhs_key_base = 'B';
static const char lhs_key_crier = 'C';
static const char lhs_key_ro_set = 'W'; /* __newindex of views; also marks them */
static const char lhs_key_ro_len = 'L';
static const char lhs_key_ro_pairs = 'P';

lh_state_t *lh_of(lua_State *L)
{
    void *ud = NULL;
    (void)lua_getallocf(L, &ud);
    return ud;
}

/* The budget is accounted as the delta between old and new block sizes (Lua
 * passes a type tag, not a size, in osize when ptr is NULL): adding nsize on
 * every realloc would drift upward until healthy states were refused. Lua
 * requires that shrinking never fails, so only growth is checked, and only
 * while rule code runs: the host's own pushes between calls are bounded by
 * their own limits and must not raise outside a protected call. */
void *lhs_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lh_state_t *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->enforce) {
        size_t cap = s->lim.mem_bytes + s->slack;
        size_t room = s->mem_used < cap ? cap - s->mem_used : 0;
        if (nsize - old > room) {
            s->mem_refused = 1;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (!p) {
        if (nsize <= old)
            return ptr; /* keep the larger block: Lua may not see a failed shrink */
        return NULL;
    }
    s->mem_used = s->mem_used - old + nsize;
    if (s->mem_used > s->mem_peak)
        s->mem_peak = s->mem_used;
    return p;
}

static void lhs_hook(lua_State *L, lua_Debug *ar);

static int lhs_past_deadline(const lh_state_t *s)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 1; /* no clock: stopping is the safe answer */
    if (now.tv_sec != s->deadline.tv_sec)
        return now.tv_sec > s->deadline.tv_sec;
    return now.tv_nsec >= s->deadline.tv_nsec;
}

/* Marks the budget spent (why: LHS_OVER_*) and raises its error on L, with
 * the position of the function level levels up and an optional detail.
 * Lua runs no hook while a hook runs, and leaves a thread whose hook raised
 * with hooks off for good; so every thread is made to stop at its next
 * instruction: L and the main thread are re-armed at a count of 1 (which
 * also marks L as stopped, see lua_guard.c), a coroutine resumed later
 * raises at its first hook, and the guarded library functions refuse to
 * start. A pcall inside the rule may catch one error, but the very next
 * instruction raises again, so the abort reaches the host. */
static int lhs_raise_budget(lua_State *L, lh_state_t *s, int why, int level, const char *detail)
{
    if (s->expired == LHS_RUNNING)
        s->expired = why;
    lua_sethook(L, lhs_hook, LUA_MASKCOUNT, 1);
    if (L != s->L)
        lua_sethook(s->L, lhs_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, level);
    if (s->expired == LHS_OVER_INSTRUCTIONS)
        lua_pushfstring(L, "%sinstruction budget exceeded (%I instructions)%s%s",
                        lua_tostring(L, -1), (lua_Integer)s->lim.instructions, detail ? ": " : "",
                        detail ? detail : "");
    else
        lua_pushfstring(L, "%stime budget exceeded (%d ms)%s%s", lua_tostring(L, -1),
                        (int)s->lim.time_ms, detail ? ": " : "", detail ? detail : "");
    return lua_error(L);
}

/* Armed by the watchdog on the Lua thread running a call past its deadline,
 * and by lhs_raise_budget to stop every thread at its next instruction. A
 * hook found on a thread that is on time was left by an earlier call (a
 * coroutine kept in a file's local, resumed later): it removes itself, so
 * this call runs at full speed. */
static void lhs_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lh_state_t *s = lh_of(L);
    if (s->running && s->expired == LHS_RUNNING && lhs_past_deadline(s))
        s->expired = LHS_OVER_TIME;
    if (!s->running || s->expired == LHS_RUNNING) {
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    lhs_raise_budget(L, s, s->expired, 0, NULL);
}

double lhs_budget_left(lua_State *L)
{
    const lh_state_t *s = lh_of(L);
    if (!s->running || !s->lim.instructions)
        return INFINITY;
    return s->instr >= s->lim.instructions ? 0.0 : (double)(s->lim.instructions - s->instr);
}

double lhs_memory_left(lua_State *L)
{
    const lh_state_t *s = lh_of(L);
    if (!s->enforce)
        return INFINITY;
    return s->mem_used >= s->lim.mem_bytes ? 0.0 : (double)(s->lim.mem_bytes - s->mem_used);
}

void lhs_check_spent(lua_State *L)
{
    lh_state_t *s = lh_of(L);
    if (s->running && s->expired != LHS_RUNNING)
        lhs_raise_budget(L, s, s->expired, 1, NULL);
}

void lhs_spend(lua_State *L, double cost, const char *what)
{
    lh_state_t *s = lh_of(L);
    if (!s->running)
        return;
    lhs_check_spent(L);
    if (!(cost <= lhs_budget_left(L))) {
        char detail[160];
        if (isinf(cost))
            snprintf(detail, sizeof detail, "%s", what);
        else
            snprintf(detail, sizeof detail, "%s would take about %.3g instructions", what, cost);
        lhs_raise_budget(L, s, LHS_OVER_INSTRUCTIONS, 1, detail);
    }
    s->instr += (unsigned long long)cost;
}

void lhs_check_clock(lua_State *L)
{
    lh_state_t *s = lh_of(L);
    if (s->running && s->expired == LHS_RUNNING && lhs_past_deadline(s))
        lhs_raise_budget(L, s, LHS_OVER_TIME, 1, NULL);
}

int lhs_late(const lh_state_t *s)
{
    return lhs_past_deadline(s);
}

int lhs_watch_start(lh_state_t *s)
{
    return lhw_start(&s->watch, lhs_hook, s->lim.time_ms);
}

void lhs_watch_stop(lh_state_t *s)
{
    lhw_stop(&s->watch);
}

/* No hook is set here: Lua 5.4 sends every instruction of a hooked thread
 * through its hook machinery, whatever the count, which cost more than the
 * rules. The watchdog arms one only once the deadline has passed. */
void lhs_begin(lh_state_t *s)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        now.tv_sec = now.tv_nsec = 0;
    long long ns = (long long)now.tv_nsec + (long long)(s->lim.time_ms % 1000) * 1000000LL;
    s->deadline.tv_sec = now.tv_sec + (time_t)(s->lim.time_ms / 1000) + (time_t)(ns / 1000000000LL);
    s->deadline.tv_nsec = (long)(ns % 1000000000LL);
    s->instr = 0;
    s->expired = LHS_RUNNING;
    s->mem_refused = 0;
    s->log_lines = 0;
    s->running = 1;
    s->enforce = 1;
    lhw_enter(&s->watch, s->L, &s->deadline);
}

/* After lhw_leave the watchdog cannot arm s->L any more, so clearing the
 * hook here is final. */
void lhs_end(lh_state_t *s)
{
    lhw_leave(&s->watch);
    s->running = 0;
    s->enforce = 0;
    lua_sethook(s->L, NULL, 0, 0);
}

lua_State *lhs_switch_thread(lua_State *L, lua_State *to)
{
    lh_state_t *s = lh_of(L);
    if (!s->running)
        return to;
    return lhw_switch(&s->watch, to);
}

/* The traceback may use LHS_MSGH_SLACK bytes past the memory budget, so an
 * error raised because memory ran out is still reported rather than turned
 * into "error in error handling"; the message is cut to LHS_MSGH_TEXT bytes
 * first, so a huge error value costs no more than a short one. No Lua code
 * runs here. */
int lhs_msgh(lua_State *L)
{
    lh_state_t *s = lh_of(L);
    size_t len = 0;
    const char *msg = lua_tolstring(L, 1, &len);
    s->slack = LHS_MSGH_SLACK;
    if (!msg) {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    } else if (len > LHS_MSGH_TEXT) {
        size_t cut = LHS_MSGH_TEXT;
        while (cut > 0 && ((unsigned char)msg[cut] & 0xC0) == 0x80)
            cut--; /* do not split a UTF-8 sequence */
        lua_pushlstring(L, msg, cut);
        lua_pushfstring(L, "%s... (%I bytes more)", lua_tostring(L, -1), (lua_Integer)(len - cut));
        msg = lua_tostring(L, -1);
    }
    luaL_traceback(L, L, msg, 1);
    s->slack = 0;
    return 1;
}

static const char *lhs_key_text(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : luaL_typename(L, idx);
}

/* __index of the base environment: the end of every global lookup. */
static int lhs_undefined_global(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushfstring(L, "%sundefined global '%s'", lua_tostring(L, -1), lhs_key_text(L, 2));
    return lua_error(L);
}

/* __index of a library table; upvalue 1 is the library's name. */
static int lhs_undefined_field(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushfstring(L, "%sundefined field '%s.%s'", lua_tostring(L, -1),
                    lua_tostring(L, lua_upvalueindex(1)), lhs_key_text(L, 2));
    return lua_error(L);
}

/* __newindex of frozen tables; upvalue 1 is a library name or nil for the
 * globals. */
static int lhs_read_only(lua_State *L)
{
    luaL_where(L, 1);
    if (lua_isnil(L, lua_upvalueindex(1)))
        lua_pushfstring(L, "%sassignment to global '%s' (globals are frozen)", lua_tostring(L, -1),
                        lhs_key_text(L, 2));
    else
        lua_pushfstring(L, "%sassignment to field '%s.%s' (read-only)", lua_tostring(L, -1),
                        lua_tostring(L, lua_upvalueindex(1)), lhs_key_text(L, 2));
    return lua_error(L);
}

/* Pops the value on top (the table or function that answers reads) and
 * makes it the __index of a metatable for the table at idx that refuses
 * every write (lhs_read_only) and hides itself from getmetatable. */
static void lhs_seal(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 0, 3);
    lua_insert(L, -2);
    lua_setfield(L, -2, "__index");
    lua_pushnil(L);
    lua_pushcclosure(L, lhs_read_only, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, idx);
}

/* ---- read-only views -------------------------------------------------- */

/* A view is an empty table whose metatable reads through (__index is the
 * backing table itself, the VM's fast path) and refuses writes. The backing
 * table never reaches rule code: getmetatable is blocked by __metatable. */
static int lhs_view_write(lua_State *L)
{
    luaL_where(L, 1);
    lua_pushfstring(L, "%sassignment to field '%s' of a read-only input", lua_tostring(L, -1),
                    lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : luaL_typename(L, 2));
    return lua_error(L);
}

/* Pushes the backing table of the view at idx (absolute), or nil. */
static int lhs_view_backing(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx)) {
        lua_pushnil(L);
        return 0;
    }
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_set);
    int view = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!view) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return 0;
    }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return 1;
}

static int lhs_view_len(lua_State *L)
{
    lhs_view_backing(L, 1);
    lua_pushinteger(L, lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0);
    return 1;
}

static int lhs_view_next(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* pairs(view) walks the backing table (raw next, no rule code involved). */
static int lhs_view_pairs(lua_State *L)
{
    lua_pushcfunction(L, lhs_view_next);
    if (!lhs_view_backing(L, 1))
        return luaL_error(L, "pairs: not a read-only input");
    lua_pushnil(L);
    return 3;
}

void lhs_readonly(lua_State *L)
{
    int backing = lua_gettop(L);
    lua_createtable(L, 0, 0);
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, backing);
    lua_setfield(L, -2, "__index");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_set);
    lua_setfield(L, -2, "__newindex");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_len);
    lua_setfield(L, -2, "__len");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, backing);
}

void lhs_push_raw(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE) {
        if (lhs_view_backing(L, idx))
            return;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, idx);
}

/* setmetatable without __gc: a finalizer would run outside any call's
 * budget (during a host-side collection or lua_close), where a loop in it
 * could not be stopped. Upvalue 1 is the real setmetatable. */
static int lhs_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

static int lhs_log(lua_State *L)
{
    lh_state_t *s = lh_of(L);
    const char *level_name = luaL_checkstring(L, 1);
    size_t n = 0;
    const char *text = luaL_checklstring(L, 2, &n);
    int level = log_level_parse(level_name);
    if (level < 0)
        return luaL_argerror(L, 1, "level must be debug, info, warning, error or critical");
    /* A rule logging in a loop must not flood the log within its budget. */
    if (s->log_lines >= LHS_LOG_MAX_LINES)
        return 0;
    s->log_lines++;
    char line[LHS_LOG_MAX_TEXT + 1];
    size_t cut = n < LHS_LOG_MAX_TEXT ? n : LHS_LOG_MAX_TEXT;
    if (cut < n)
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--; /* do not split a UTF-8 sequence */
    memcpy(line, text, cut);
    line[cut] = '\0';
    log_kv((log_level_t)level, "policy", "rule_log", "module", s->cur_module ? s->cur_module : "",
           "text", line, (char *)NULL);
    return 0;
}

/* Makes the table at the top of the stack the real body of library `name`
 * and replaces it with a read-only proxy. Rules see only the proxy, so one
 * rule file cannot change string.format under another. */
static void lhs_proxy_library(lua_State *L, const char *name)
{
    int real = lua_gettop(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, name);
    lua_pushcclosure(L, lhs_undefined_field, 1);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, real);

    lua_newtable(L); /* the proxy */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, real);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_pushcclosure(L, lhs_read_only, 1);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, real);
}

static const char *const lhs_base_allowed[] = {
    "assert",   "error",    "ipairs",       "next",     "pairs",  "pcall",
    "select",   "tonumber", "tostring",     "type",     "xpcall", "rawget",
    "rawequal", "rawlen",   "getmetatable", "_VERSION", NULL};

static const struct {
    const char *name;
    lua_CFunction open;
    void (*guard)(lua_State *L, int lib); /* NULL: nothing to guard */
} lhs_libraries[] = {
    {"table", luaopen_table, lhg_guard_table},
    {"math", luaopen_math, NULL},
    {"utf8", luaopen_utf8, lhg_guard_utf8},
    {"coroutine", luaopen_coroutine, lhg_guard_coroutine},
};

int lhs_open(lua_State *L)
{
    /* luaopen_base fills the real global table; the rules never see it (each
     * chunk's _ENV is replaced), and it is emptied below as well. */
    lua_pushcfunction(L, luaopen_base);
    lua_call(L, 0, 1);
    int real_g = lua_gettop(L);

    lua_newtable(L);
    int base = lua_gettop(L);
    for (int i = 0; lhs_base_allowed[i]; i++) {
        lua_getfield(L, real_g, lhs_base_allowed[i]);
        lua_setfield(L, base, lhs_base_allowed[i]);
    }
    lua_getfield(L, real_g, "setmetatable");
    lua_pushcclosure(L, lhs_setmetatable, 1);
    lua_setfield(L, base, "setmetatable");
    lhg_guard_base(L, base);

    /* string: no dump, and a protected metatable for all strings, whose
     * __index stays the real library so that ("x"):upper() works. */
    lua_pushcfunction(L, luaopen_string);
    lua_call(L, 0, 1);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lhg_guard_string(L, -1);
    lua_pushliteral(L, "");
    if (!lua_getmetatable(L, -1))
        return luaL_error(L, "string metatable missing");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    lhs_proxy_library(L, "string");
    lua_setfield(L, base, "string");

    for (size_t i = 0; i < sizeof lhs_libraries / sizeof lhs_libraries[0]; i++) {
        lua_pushcfunction(L, lhs_libraries[i].open);
        lua_call(L, 0, 1);
        if (lhs_libraries[i].guard)
            lhs_libraries[i].guard(L, -1);
        lhs_proxy_library(L, lhs_libraries[i].name);
        lua_setfield(L, base, lhs_libraries[i].name);
    }

    lua_pushcfunction(L, lhs_view_write);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_set);
    lua_pushcfunction(L, lhs_view_len);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_len);
    lua_pushcfunction(L, lhs_view_pairs);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lhs_key_ro_pairs);

    lua_newtable(L);
    lua_pushcfunction(L, lhs_log);
    lua_setfield(L, -2, "log");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lhs_key_crier);
    lhs_proxy_library(L, "crier");
    lua_setfield(L, base, "crier");

    lua_pushcfunction(L, lhs_undefined_global);
    lhs_seal(L, base);
    lua_pushvalue(L, base);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &lhs_key_base);

    /* Clearing fields during a traversal is allowed by lua_next. */
    lua_pushnil(L);
    while (lua_next(L, real_g)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, real_g);
    }
    return 0;
}

void lhs_push_module_env(lua_State *L)
{
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_createtable(L, 0, 2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

/* Moves the environment's contents into a new table D that reads through to
 * the base, and turns the environment itself into an empty proxy: reads go to
 * D (then the base, then "undefined global"), writes raise. Functions compiled
 * in the file keep the environment as their _ENV, so they see the frozen view. */
int lhs_freeze_env(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, 2);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, 1);
    }
    lua_createtable(L, 0, 2);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_base);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, 2);

    lua_pushvalue(L, 2);
    lhs_seal(L, 1);
    return 1;
}

void lhs_push_crier(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &lhs_key_crier);
}
