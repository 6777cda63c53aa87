/* lua_host: the sandboxed Lua 5.4 state that runs the policy rules.
 *
 * One lh_state_t per worker thread; a state is never shared between threads
 * and none of these functions may be called on one state concurrently.
 *
 * Life cycle:
 *   lh_new -> lh_register (host functions, optional) -> lh_load_dir (or
 *   lh_load_buffer... then lh_freeze) -> lh_call / lh_call_json, many times
 *   -> lh_free.
 * A rule set that fails to load leaves a state that must be discarded: hot
 * reload builds a fresh state and keeps the old one when the new one fails.
 *
 * What a rule file sees: an allow-listed environment (assert, error, ipairs,
 * next, pairs, pcall, select, tonumber, tostring, type, xpcall, rawget,
 * rawequal, rawlen, getmetatable, setmetatable (refusing __gc), _VERSION,
 * _G, and read-only `string` (no dump), `table`, `math`, `utf8`, `coroutine`,
 * `crier`). Nothing else: no io, os, debug, package, require, load, loadfile,
 * dofile, collectgarbage, rawset, print (use crier.log(level, text)).
 *
 * Modules: each file runs once, at load, in its own environment; the global
 * functions it defines there (`function select(msg, client) ... end`) are the
 * module's entry points, called by file name without ".lua" ("channels").
 * What the chunk returns is ignored. After the freeze every environment is
 * read-only: assigning a global raises, and reading an undefined one raises
 * "undefined global 'x'", so a typo in a rule fails loudly. Unknown fields of
 * the libraries raise the same way ("undefined field 'string.dump'"). State a
 * rule wants to keep between calls must live in locals of its file.
 *
 * Budgets: every entry into Lua (each file at load, each call) gets a fresh
 * wall-time budget, enforced by a watchdog thread of the state that stops
 * the entry once its deadline passes, and a fresh instruction budget, which
 * counts the work of library functions (below), not VM instructions; the
 * state as a whole has a memory budget.
 * Pattern matching runs in C beyond the instruction count, so string.find,
 * match, gmatch and gsub refuse a pattern whose worst-case backtracking on
 * the given string is too large ("pattern too complex ...").
 * A rule that raises, loops or allocates too much fails only that call, and
 * the state stays usable for the next one. */
#ifndef CRIER_LUA_HOST_H
#define CRIER_LUA_HOST_H

#include <lua.h>

#include <cjson/cJSON.h>
#include <stddef.h>

/* Return codes of the lh_ functions that can fail:
 * LH_ERUN     the rule raised an error (or a syntax error at load)
 * LH_EBUDGET  instruction or time budget exceeded
 * LH_EMEMORY  memory budget exceeded
 * LH_EMISUSE  wrong use of the host: unknown module or function, bad name,
 *             wrong phase (e.g. a load after the freeze)
 * LH_ECONVERT a value could not be converted to or from JSON */
#define LH_OK       0
#define LH_ERUN     (-1)
#define LH_EBUDGET  (-2)
#define LH_EMEMORY  (-3)
#define LH_EMISUSE  (-4)
#define LH_ECONVERT (-5)

/* Defaults applied to zero fields of lh_limits_t. */
#define LH_DEFAULT_MEM_BYTES    (8u * 1024u * 1024u)
#define LH_DEFAULT_TIME_MS      50
#define LH_DEFAULT_INSTRUCTIONS 10000000ull
/* Bounds on JSON crossing the boundary in either direction. */
#define LH_JSON_MAX_DEPTH  16
#define LH_JSON_MAX_NODES  10000
#define LH_JSON_MAX_STRING (64 * 1024)
#define LH_MAX_FILE_BYTES  (1024 * 1024)

typedef struct lh_limits {
    size_t mem_bytes;                /* per state */
    unsigned time_ms;                /* wall time per call */
    unsigned long long instructions; /* library work per call (see below) */
} lh_limits_t;

typedef struct lh_state lh_state_t;

/* Creates a sandboxed state; limits may be NULL for the defaults. Returns NULL
 * and a message in err on failure. The caller owns the state (lh_free). */
lh_state_t *lh_new(const lh_limits_t *limits, char *err, size_t errlen);
void lh_free(lh_state_t *s);

/* Adds crier.<name> = fn. Only before the freeze; LH_EMISUSE for a bad or
 * duplicate name or after the freeze. fn runs inside the call's budgets and,
 * because Lua errors longjmp, must hold no malloc'd memory or lock across any
 * Lua API call that can raise. lh_of(L) gives it back its lh_state_t. */
int lh_register(lh_state_t *s, const char *name, lua_CFunction fn);
lh_state_t *lh_of(lua_State *L);

/* Loads dir/<file> for each name in the NULL-terminated files (NULL means
 * channels.lua, timing.lua, batching.lua, fallback.lua), each as the module
 * named by the file without ".lua", then freezes. Errors name the file as
 * "<last component of dir>/<file>:<line>: ...". */
int lh_load_dir(lh_state_t *s, const char *dir, const char *const *files, char *err, size_t errlen);
/* Loads one chunk (text only: a binary chunk is refused) as module `module`;
 * chunkname is how errors name it ("rules/channels.lua"). Before the freeze. */
int lh_load_buffer(lh_state_t *s, const char *module, const char *chunkname, const char *data,
                   size_t len, char *err, size_t errlen);
/* Makes every module environment read-only and fixes the version. */
int lh_freeze(lh_state_t *s);

/* Hex SHA-256 prefix (16 chars) over the loaded modules' names and bytes, in
 * load order; "" before the freeze. Owned by the state. */
const char *lh_version(const lh_state_t *s);

/* The state's Lua stack, for callers that push arguments themselves. Outside
 * lh_call the memory budget is not enforced, so pushes never raise for it;
 * keep what you push bounded (lh_push_json is). */
lua_State *lh_lua(lh_state_t *s);

/* Calls module.fn with the nargs values on top of the stack (popped in all
 * cases). On LH_OK the nresults results are left on the stack for the caller
 * to pop; otherwise nothing is left and err holds the message and traceback. */
int lh_call(lh_state_t *s, const char *module, const char *fn, int nargs, int nresults, char *err,
            size_t errlen);

/* Pushes a JSON value as a Lua value (objects and arrays become tables, null
 * becomes nil). Pushes nothing on failure (LH_ECONVERT: too deep or too big). */
int lh_push_json(lh_state_t *s, const cJSON *v, char *err, size_t errlen);
/* Converts the Lua value at idx to JSON into *out (owned by the caller,
 * cJSON_Delete). A table with keys 1..n becomes an array (an empty table an
 * empty array), one with string keys an object; anything else (functions,
 * mixed keys, NaN, invalid UTF-8, over the bounds) is LH_ECONVERT. */
int lh_to_json(lh_state_t *s, int idx, cJSON **out, char *err, size_t errlen);
/* lh_push_json on each of args[0..nargs), lh_call with one result, lh_to_json
 * of it. *result is owned by the caller. */
int lh_call_json(lh_state_t *s, const char *module, const char *fn, const cJSON *const *args,
                 int nargs, cJSON **result, char *err, size_t errlen);

/* Read-only views: the inputs a decision shares between its rule calls.
 * lh_readonly replaces the table on top of the stack with a view of it:
 * field reads, t[i], #t, ipairs and pairs see the table; any assignment
 * raises "read-only input"; rawget, rawlen and next see an empty table, and
 * getmetatable gives false. Tables inside it should be views themselves.
 * Outside a call it never raises (the host's own pushes are not budgeted). */
void lh_readonly(lh_state_t *s);
/* Pushes the table behind the view at idx, or the value at idx when it is
 * not a view. Runs no metamethod, so it is safe on anything a rule returned. */
void lh_push_raw(lh_state_t *s, int idx);
/* 1 when the len bytes at p are text a result may carry into JSON: valid
 * UTF-8, no NUL, at most LH_JSON_MAX_STRING bytes. */
int lh_text_ok(const char *p, size_t len);

/* Bytes the state currently holds, and the most it has held. */
size_t lh_mem_used(const lh_state_t *s);
size_t lh_mem_peak(const lh_state_t *s);

#endif
