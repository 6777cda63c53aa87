/* memmem is a GNU extension of glibc (and of the BSDs and musl). */
#define _GNU_SOURCE
#include "policy/lua_guard.h"

#include "policy/lua_sandbox.h"

#include <lauxlib.h>

#include <math.h>
#include <string.h>

/* The budget's hook stops VM instructions only: a library function written
 * in C runs to its end unobserved, however long it takes. So each library
 * function whose work is not bounded by the memory it allocates is replaced
 * by a closure that estimates that work from its arguments, in units of
 * about one VM instruction, charges it to the call's instruction budget
 * before the real function starts (refusing it when it does not fit), and
 * checks the clock once it returns. Upvalue 1 is the real C function (called
 * directly, in the same frame, so its argument errors read as before) and
 * upvalue 2 the LHG_* kind. None of the wrapped functions use upvalues of
 * their own. */
enum {
    LHG_REP,
    LHG_FIND,
    LHG_MATCH,
    LHG_GMATCH,
    LHG_GSUB,
    LHG_FORMAT,
    LHG_TMOVE,
    LHG_TSORT,
    LHG_TCONCAT,
    LHG_TINSERT,
    LHG_TREMOVE,
    LHG_TUNPACK,
    LHG_ULEN,
    LHG_UCODEPOINT,
    LHG_UOFFSET,
    LHG_UCHAR,
};

/* Bytes a library function copies or compares per unit of budget: memcpy
 * and memcmp run far faster per byte than the VM per instruction. */
#define LHG_BYTES_PER_UNIT 16.0
/* The worst-case bound of a pattern is pessimistic (real subjects rarely
 * backtrack fully), so it may be this many times the budget left; what is
 * charged is the linear part, and the clock check after the match catches
 * the rest. */
#define LHG_PATTERN_SLACK 4.0
/* glibc's memmem compares up to the needle's length per position for
 * needles up to this long, and runs the linear two-way algorithm (a few
 * compares per byte) for longer ones. */
#define LHG_MEMMEM_WINDOW 256.0
#define LHG_TWO_WAY_COST  4.0

static double lhg_strlen(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TSTRING ? (double)lua_rawlen(L, idx) : 0.0;
}

/* The integer argument at idx, or dflt when it is absent or not an integer
 * (the real function then raises its own argument error). */
static double lhg_int(lua_State *L, int idx, double dflt)
{
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    return ok ? (double)v : dflt;
}

/* #t as the library sees it (luaL_len, so __len counts; a string's length
 * for table.unpack("...")), or -1 for anything else: the real function
 * raises for that. A Lua __len runs under the hook like any rule code. */
static double lhg_len(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return (double)lua_rawlen(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        return -1.0;
    return (double)luaL_len(L, idx);
}

/* Elements from i to j, none when j < i. */
static double lhg_span(double i, double j)
{
    return j >= i ? j - i + 1.0 : 0.0;
}

/* ---- patterns --------------------------------------------------------- */

static size_t lhg_set_end(const char *p, size_t plen, size_t i)
{
    size_t j = i + 1;
    if (j < plen && p[j] == '^')
        j++;
    do { /* the first character of a set may be ']' */
        if (j >= plen)
            return plen;
        j += p[j] == '%' ? 2 : 1;
    } while (j < plen && p[j] != ']');
    return j + 1;
}

/* A bound on the single-character steps of matching p against n bytes:
 * each start position (one when anchored) tries every item, each quantified
 * item can retry once per subject byte, each optional one twice, and a
 * balanced match or back-reference scans the subject. *items gets the
 * number of items, for the linear part that is charged. */
static double lhg_pattern_cost(const char *p, size_t plen, size_t n, int anchorable, double *items)
{
    double len = (double)n + 1.0;
    double mult = 1.0, count = 0.0;
    double starts = len;
    size_t i = 0;
    if (anchorable && plen > 0 && p[0] == '^') {
        starts = 1.0;
        i = 1;
    }
    while (i < plen) {
        char c = p[i];
        if (c == '(' || c == ')') {
            i++;
            continue;
        }
        count += 1.0;
        if (c == '%' && i + 1 < plen) {
            char e = p[i + 1];
            if (e == 'b') {
                mult *= len;
                i += 4;
                continue;
            }
            if (e == 'f') {
                i += 2;
                if (i < plen && p[i] == '[')
                    i = lhg_set_end(p, plen, i);
                continue;
            }
            if (e >= '0' && e <= '9')
                mult *= len;
            i += 2;
        } else if (c == '[') {
            i = lhg_set_end(p, plen, i);
        } else {
            i++;
        }
        if (i < plen && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
            mult *= len;
            i++;
        } else if (i < plen && p[i] == '?') {
            mult *= 2.0;
            i++;
        }
    }
    if (count < 1.0)
        count = 1.0;
    *items = count;
    return starts * count * mult;
}

/* Lua's own test for a find that needs no pattern machinery. */
static int lhg_no_specials(const char *p, size_t plen)
{
    for (size_t i = 0; i < plen; i++)
        if (strchr("^$*+?.([%-", p[i]) && p[i] != '\0')
            return 0;
    return 1;
}

/* string.find(s, p, init, plain) for a plain search, with memmem instead of
 * Lua's quadratic scan; the same answers as the library's. */
static int lhg_find_plain(lua_State *L)
{
    size_t ls = 0, lp = 0;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    lua_Integer init = luaL_optinteger(L, 3, 1);
    size_t start;
    if (init > 0)
        start = (size_t)init;
    else if (init == 0 || init < -(lua_Integer)ls)
        start = 1;
    else
        start = ls + (size_t)init + 1;
    if (start - 1 > ls) {
        lua_pushnil(L);
        return 1;
    }
    start--;
    const char *hit = memmem(s + start, ls - start, p, lp);
    if (!hit) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
    lua_pushinteger(L, (lua_Integer)(hit - s) + (lua_Integer)lp);
    return 2;
}

/* Charges a pattern operation; returns 1 when find should take the plain
 * path. */
static int lhg_charge_pattern(lua_State *L, int kind)
{
    size_t n = 0, plen = 0;
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER)
        return 0; /* the real function raises */
    const char *pat = lua_tolstring(L, 2, &plen);
    (void)lua_tolstring(L, 1, &n);
    if (!pat)
        return 0;
    if (kind == LHG_FIND && (lua_toboolean(L, 4) || lhg_no_specials(pat, plen))) {
        double window = (double)plen <= LHG_MEMMEM_WINDOW ? (double)plen : LHG_TWO_WAY_COST;
        lhs_spend(L, 1.0 + ((double)n * (window + 1.0) + (double)plen) / LHG_BYTES_PER_UNIT,
                  "string.find");
        return 1;
    }
    double items = 1.0;
    /* gmatch treats a leading '^' as anchoring nothing useful */
    double worst = lhg_pattern_cost(pat, plen, n, kind != LHG_GMATCH, &items);
    double linear = ((double)n + 1.0) * items;
    if (kind == LHG_GSUB && lua_type(L, 3) == LUA_TSTRING)
        linear += ((double)n + 1.0) * lhg_strlen(L, 3) / LHG_BYTES_PER_UNIT;
    if (worst > LHG_PATTERN_SLACK * lhs_budget_left(L)) {
        char what[64];
        snprintf(what, sizeof what, "pattern too complex for a %zu-byte string", n);
        lhs_spend(L, INFINITY, what);
    }
    lhs_spend(L, 1.0 + linear, "pattern matching");
    return 0;
}

/* ---- the guard -------------------------------------------------------- */

static int lhg_guarded(lua_State *L)
{
    lua_CFunction real = lua_tocfunction(L, lua_upvalueindex(1));
    int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
    double cost = 1.0;
    const char *what = "a library call";
    switch (kind) {
    case LHG_REP: {
        double reps = lhg_int(L, 2, 0.0);
        if (reps <= 0.0)
            break;
        double bytes = reps * (lhg_strlen(L, 1) + lhg_strlen(L, 3));
        /* Larger than the memory left: the library's first allocation is
         * refused at once, before any copying, as a memory error. */
        if (bytes > 0.0 && bytes > lhs_memory_left(L))
            break;
        cost = reps + bytes / LHG_BYTES_PER_UNIT;
        what = "string.rep";
        break;
    }
    case LHG_FIND:
    case LHG_MATCH:
    case LHG_GMATCH:
    case LHG_GSUB: {
        int plain = lhg_charge_pattern(L, kind);
        int nres = plain ? lhg_find_plain(L) : real(L);
        lhs_check_clock(L);
        return nres;
    }
    case LHG_FORMAT: {
        cost += lhg_strlen(L, 1);
        for (int i = 2, top = lua_gettop(L); i <= top; i++)
            cost += 1.0 + lhg_strlen(L, i) / LHG_BYTES_PER_UNIT;
        what = "string.format";
        break;
    }
    case LHG_TMOVE:
        cost += 4.0 * lhg_span(lhg_int(L, 2, 1.0), lhg_int(L, 3, 0.0));
        what = "table.move";
        break;
    case LHG_TSORT: {
        double n = lhg_len(L, 1);
        if (n < 2.0)
            break;
        /* Comparing strings costs their length: sorting many copies of one
         * long string is slow without allocating anything. The scan itself
         * is charged first, so a huge __len is refused before it. */
        lhs_spend(L, n, "table.sort");
        double longest = 0.0;
        for (lua_Integer i = 1; i <= (lua_Integer)n; i++) {
            if (lua_rawgeti(L, 1, i) == LUA_TSTRING && (double)lua_rawlen(L, -1) > longest)
                longest = (double)lua_rawlen(L, -1);
            lua_pop(L, 1);
        }
        cost = n * log2(n + 1.0) * (2.0 + longest / LHG_BYTES_PER_UNIT);
        what = "table.sort";
        break;
    }
    case LHG_TCONCAT: {
        double n = lhg_len(L, 1);
        if (n < 0.0)
            break;
        double count = lhg_span(lhg_int(L, 3, 1.0), lhg_int(L, 4, n));
        cost += count * (2.0 + lhg_strlen(L, 2) / LHG_BYTES_PER_UNIT);
        what = "table.concat";
        break;
    }
    case LHG_TINSERT:
    case LHG_TREMOVE: {
        double n = lhg_len(L, 1);
        cost += 2.0 * (n > 0.0 ? n : 0.0); /* the elements after the position move */
        what = kind == LHG_TINSERT ? "table.insert" : "table.remove";
        break;
    }
    case LHG_TUNPACK: {
        double n = lua_isnoneornil(L, 3) ? lhg_len(L, 1) : lhg_int(L, 3, 0.0);
        cost += lhg_span(lhg_int(L, 2, 1.0), n);
        what = "table.unpack";
        break;
    }
    case LHG_ULEN:
    case LHG_UCODEPOINT:
    case LHG_UOFFSET:
        cost += lhg_strlen(L, 1) / 4.0; /* decoded byte by byte */
        what = "a utf8 function";
        break;
    case LHG_UCHAR:
        cost += (double)lua_gettop(L);
        what = "utf8.char";
        break;
    default:
        break;
    }
    lhs_spend(L, cost, what);
    int nres = real(L);
    lhs_check_clock(L);
    return nres;
}

typedef struct lhg_entry {
    const char *name;
    int kind;
} lhg_entry_t;

static void lhg_wrap(lua_State *L, int lib, const lhg_entry_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        lua_getfield(L, lib, e[i].name);
        lua_pushinteger(L, e[i].kind);
        lua_pushcclosure(L, lhg_guarded, 2);
        lua_setfield(L, lib, e[i].name);
    }
}

void lhg_guard_string(lua_State *L, int lib)
{
    static const lhg_entry_t e[] = {{"rep", LHG_REP},     {"find", LHG_FIND},
                                    {"match", LHG_MATCH}, {"gmatch", LHG_GMATCH},
                                    {"gsub", LHG_GSUB},   {"format", LHG_FORMAT}};
    lhg_wrap(L, lua_absindex(L, lib), e, sizeof e / sizeof e[0]);
}

void lhg_guard_table(lua_State *L, int lib)
{
    static const lhg_entry_t e[] = {{"move", LHG_TMOVE},     {"sort", LHG_TSORT},
                                    {"concat", LHG_TCONCAT}, {"insert", LHG_TINSERT},
                                    {"remove", LHG_TREMOVE}, {"unpack", LHG_TUNPACK}};
    lhg_wrap(L, lua_absindex(L, lib), e, sizeof e / sizeof e[0]);
}

void lhg_guard_utf8(lua_State *L, int lib)
{
    static const lhg_entry_t e[] = {{"len", LHG_ULEN},
                                    {"codepoint", LHG_UCODEPOINT},
                                    {"offset", LHG_UOFFSET},
                                    {"char", LHG_UCHAR}};
    lhg_wrap(L, lua_absindex(L, lib), e, sizeof e / sizeof e[0]);
}

/* ---- code that must not run once the budget is spent ------------------ */

/* xpcall on top of lua_pcall. The library's xpcall calls the handler where
 * the error is raised, and a budget error is raised inside the count hook,
 * where Lua runs no hook at all: a handler looping there would never be
 * stopped. Here the handler runs after the protected call has returned,
 * under the hook like any rule code, and never for a budget error, which is
 * raised again at once. The handler sees the error value, as before, but
 * not the stack where it was raised (rules have no debug library to look at
 * it anyway). A yield across this xpcall is not supported. */
static int lhg_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++)
        lua_pushvalue(L, i);
    int status = lua_pcall(L, n - 2, LUA_MULTRET, 0);
    lhs_check_spent(L);
    if (status == LUA_OK) {
        int nres = lua_gettop(L) - n;
        lua_pushboolean(L, 1);
        lua_insert(L, n + 1);
        return nres + 1;
    }
    lua_pushvalue(L, 2);
    lua_insert(L, -2);
    status = lua_pcall(L, 1, 1, 0);
    lhs_check_spent(L);
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* 1 when co died of an error raised inside the count hook: Lua leaves such
 * a thread with its hooks off for good, so its pending to-be-closed
 * handlers would run unbounded. The hook marks every thread it stops by
 * re-arming it at a count of 1. */
static int lhg_stopped_thread(lua_State *co)
{
    int st = lua_status(co);
    return st != LUA_OK && st != LUA_YIELD && lua_gethookcount(co) == 1;
}

/* coroutine.resume and coroutine.close, refused once the budget is spent
 * (the error is raised again), and close refused for a thread the budget
 * stopped: its to-be-closed handlers are dropped, never run. Upvalue 1 is
 * the real function. */
static int lhg_co_resume(lua_State *L)
{
    lhs_check_spent(L);
    lua_State *co = lua_tothread(L, 1);
    if (!co)
        return lua_tocfunction(L, lua_upvalueindex(1))(L); /* raises its argument error */
    /* The real resume runs protected, so that even when it raises (its
     * message costs memory, which can run out) the watchdog is pointed back
     * at this thread before the error goes on. */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_State *from = lhs_switch_thread(L, co);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    (void)lhs_switch_thread(L, from);
    if (st != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

static int lhg_co_close(lua_State *L)
{
    lhs_check_spent(L);
    lua_State *co = lua_tothread(L, 1);
    if (co && lhg_stopped_thread(co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "coroutine was stopped by the budget; its close handlers do not run");
        return 2;
    }
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

/* The body of a coroutine.wrap function; upvalue 1 is its thread. The
 * library's version closes the thread's to-be-closed variables when it
 * dies of an error, which for a thread the budget stopped would run them
 * with hooks off. */
static int lhg_wrap_call(lua_State *L)
{
    lhs_check_spent(L);
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int narg = lua_gettop(L);
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD)
        return luaL_error(L, "cannot resume dead coroutine");
    if (st == LUA_OK && lua_gettop(co) == 0)
        return luaL_error(L, "cannot resume dead coroutine");
    if (!lua_checkstack(co, narg))
        return luaL_error(L, "too many arguments to resume");
    lua_xmove(L, co, narg);
    int nres = 0;
    lua_State *from = lhs_switch_thread(L, co);
    st = lua_resume(co, L, narg, &nres);
    (void)lhs_switch_thread(L, from);
    if (st == LUA_OK || st == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            return luaL_error(L, "too many results to resume");
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1); /* the error */
    lhs_check_spent(L);
    st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD && !lhg_stopped_thread(co)) {
        lua_resetthread(co); /* close its to-be-closed variables, as the library does */
        lhs_check_spent(L);
    }
    if (lua_type(L, -1) == LUA_TSTRING) { /* where the wrap was called, as the library adds */
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int lhg_co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, lhg_wrap_call, 1);
    return 1;
}

void lhg_guard_coroutine(lua_State *L, int lib)
{
    lib = lua_absindex(L, lib);
    lua_getfield(L, lib, "resume");
    lua_pushcclosure(L, lhg_co_resume, 1);
    lua_setfield(L, lib, "resume");
    lua_getfield(L, lib, "close");
    lua_pushcclosure(L, lhg_co_close, 1);
    lua_setfield(L, lib, "close");
    lua_pushcfunction(L, lhg_co_wrap);
    lua_setfield(L, lib, "wrap");
}

void lhg_guard_base(lua_State *L, int base)
{
    lua_pushcfunction(L, lhg_xpcall);
    lua_setfield(L, lua_absindex(L, base), "xpcall");
}
