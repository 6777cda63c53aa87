/* The Lua sandbox: escape attempts (in the manner of Redis's "trick global
 * protection" tests), budgets, loading, versions and JSON conversion. After
 * every failure the same state must still answer a normal call. */
#include "policy/lua_host.h"

#include <lauxlib.h>
#include <lua.h>

#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const fixture_files[] = {"ok.lua", "escape.lua", NULL};

/* The fixtures sit next to this file, wherever the tree is checked out. */
static void fixture_dir(char *out, size_t n)
{
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    if (slash)
        snprintf(out, n, "%.*s/lua", (int)(slash - f), f);
    else
        snprintf(out, n, "lua");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int host_double(lua_State *L)
{
    lua_Integer x = luaL_checkinteger(L, 1);
    lua_pushinteger(L, 2 * x);
    return 1;
}

/* A host function slower than the whole time budget: the hook never runs
 * inside it, so only the check when the call returns can notice. */
static int host_nap(lua_State *L)
{
    (void)L;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 120 * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return 0;
}

static lh_state_t *load_fixtures(const lh_limits_t *lim)
{
    char err[1024], dir[1024];
    lh_state_t *s = lh_new(lim, err, sizeof err);
    if (!s)
        fail_msg("lh_new: %s", err);
    assert_int_equal(lh_register(s, "double", host_double), LH_OK);
    assert_int_equal(lh_register(s, "nap", host_nap), LH_OK);
    fixture_dir(dir, sizeof dir);
    int rc = lh_load_dir(s, dir, fixture_files, err, sizeof err);
    if (rc != LH_OK)
        fail_msg("lh_load_dir: %d %s", rc, err);
    return s;
}

static int setup(void **state)
{
    *state = load_fixtures(NULL);
    return 0;
}

/* For cases about what stops a rule other than the clock (a cost estimate,
 * the memory cap, the instruction cap): a sanitizer build runs Lua several
 * times slower, and the 50 ms clock would otherwise win the race. */
static int setup_slow_clock(void **state)
{
    lh_limits_t lim = {.time_ms = 5000};
    *state = load_fixtures(&lim);
    return 0;
}

static int teardown(void **state)
{
    lh_free(*state);
    return 0;
}

/* A normal call on s answers correctly and leaves the stack as it was. */
static void assert_still_works(lh_state_t *s)
{
    lua_State *L = lh_lua(s);
    int top = lua_gettop(L);
    char err[1024];
    lua_pushinteger(L, 2);
    lua_pushinteger(L, 40);
    int rc = lh_call(s, "ok", "add", 2, 1, err, sizeof err);
    if (rc != LH_OK)
        fail_msg("normal call failed after an escape attempt: %s", err);
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_pop(L, 1);
    assert_string_equal(lh_version(s), lh_version(s)); /* still readable */
    assert_int_equal(lua_gettop(L), top);
}

static double expect_fail(lh_state_t *s, const char *fn, int want_rc, const char *want_text)
{
    lua_State *L = lh_lua(s);
    int top = lua_gettop(L);
    char err[4096] = "";
    double t0 = now_ms();
    int rc = lh_call(s, "escape", fn, 0, 1, err, sizeof err);
    double elapsed = now_ms() - t0;
    if (rc == LH_OK)
        fail_msg("escape.%s succeeded, returning a %s", fn, luaL_typename(L, -1));
    if (rc != want_rc)
        fail_msg("escape.%s: rc %d, expected %d: %s", fn, rc, want_rc, err);
    if (!strstr(err, want_text))
        fail_msg("escape.%s: error lacks \"%s\": %s", fn, want_text, err);
    assert_int_equal(lua_gettop(L), top);
    assert_still_works(s);
    return elapsed;
}

static void test_normal_calls(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    assert_int_equal(strlen(lh_version(s)), 16);

    lua_pushstring(L, "ab");
    assert_int_equal(lh_call(s, "ok", "use_libs", 1, 1, err, sizeof err), LH_OK);
    assert_string_equal(lua_tostring(L, -1), "ABxx21,2\xc3\xa9"
                                             "3");
    lua_pop(L, 1);

    /* File locals keep state between calls; globals cannot. */
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(lh_call(s, "ok", "count", 0, 1, err, sizeof err), LH_OK);
        assert_int_equal(lua_tointeger(L, -1), i);
        lua_pop(L, 1);
    }
    assert_int_equal(lua_gettop(L), 0);
}

static void test_os_execute(void **state)
{
    expect_fail(*state, "os_execute", LH_ERUN, "undefined global 'os'");
}

static void test_io_open(void **state)
{
    expect_fail(*state, "io_open", LH_ERUN, "undefined global 'io'");
}

static void test_require(void **state)
{
    expect_fail(*state, "require_os", LH_ERUN, "undefined global 'require'");
}

static void test_load_family(void **state)
{
    expect_fail(*state, "load_text", LH_ERUN, "undefined global 'load'");
    expect_fail(*state, "loadfile_it", LH_ERUN, "undefined global 'loadfile'");
    expect_fail(*state, "dofile_it", LH_ERUN, "undefined global 'dofile'");
}

static void test_string_dump(void **state)
{
    expect_fail(*state, "string_dump", LH_ERUN, "undefined field 'string.dump'");
}

static void test_debug_package_collect_print(void **state)
{
    expect_fail(*state, "debug_getinfo", LH_ERUN, "undefined global 'debug'");
    expect_fail(*state, "package_path", LH_ERUN, "undefined global 'package'");
    expect_fail(*state, "collect", LH_ERUN, "undefined global 'collectgarbage'");
    expect_fail(*state, "print_it", LH_ERUN, "undefined global 'print'");
}

static void test_rawset_global(void **state)
{
    expect_fail(*state, "rawset_global", LH_ERUN, "undefined global 'rawset'");
}

static void test_setmetatable_global(void **state)
{
    expect_fail(*state, "setmetatable_global", LH_ERUN, "protected metatable");
}

static void test_string_metatable(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    /* getmetatable("") yields the protection value, not the real table. */
    assert_int_equal(lh_call(s, "ok", "string_meta", 0, 1, err, sizeof err), LH_OK);
    assert_int_equal(lua_type(L, -1), LUA_TBOOLEAN);
    assert_false(lua_toboolean(L, -1));
    lua_pop(L, 1);
    expect_fail(s, "string_metatable_index", LH_ERUN, "attempt to index a boolean value");
    expect_fail(s, "string_library_write", LH_ERUN, "assignment to field 'string.upper'");
    expect_fail(s, "string_library_add", LH_ERUN, "assignment to field 'string.evil'");
    /* And string methods are untouched. */
    lua_pushstring(L, "q");
    assert_int_equal(lh_call(s, "ok", "use_libs", 1, 1, err, sizeof err), LH_OK);
    assert_int_equal(strncmp(lua_tostring(L, -1), "Qxx", 3), 0);
    lua_pop(L, 1);
}

static void test_new_global_after_load(void **state)
{
    expect_fail(*state, "new_global", LH_ERUN,
                "lua/escape.lua:20: assignment to global 'brand_new_global' (globals are frozen)");
    expect_fail(*state, "global_via_G", LH_ERUN, "globals are frozen");
}

static void test_read_undefined_global(void **state)
{
    expect_fail(*state, "read_undefined", LH_ERUN,
                "lua/escape.lua:22: undefined global 'undefined_thing'");
}

/* Backtracking in C is out of the count hook's reach, so patterns whose
 * worst case is too large are refused up front; ordinary ones still work. */
static void test_pattern_bombs(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    double t0 = now_ms();
    expect_fail(s, "pattern_bomb", LH_EBUDGET, "pattern too complex for a 300-byte string");
    expect_fail(s, "pattern_bomb_method", LH_EBUDGET, "pattern too complex");
    expect_fail(s, "gmatch_bomb", LH_EBUDGET, "pattern too complex");
    assert_true(now_ms() - t0 < 250.0);
    assert_int_equal(lh_call(s, "ok", "patterns", 0, 1, err, sizeof err), LH_OK);
    assert_string_equal(lua_tostring(L, -1), "0930/150/1000/3/2");
    lua_pop(L, 1);
}

static void test_gc_finalizer_refused(void **state)
{
    expect_fail(*state, "gc_finalizer", LH_ERUN, "__gc metamethods are not allowed");
}

static void test_runtime_error_has_file_line(void **state)
{
    lh_state_t *s = *state;
    char err[2048];
    assert_int_equal(lh_call(s, "ok", "type_error", 0, 1, err, sizeof err), LH_ERUN);
    assert_non_null(strstr(err, "lua/ok.lua:59: attempt to index a nil value (local 't')"));
    assert_non_null(strstr(err, "stack traceback:"));
    assert_still_works(s);
}

/* Each loop must be stopped by the budget in well under 250 ms. */
static void expect_stopped(lh_state_t *s, const char *fn)
{
    double ms = expect_fail(s, fn, LH_EBUDGET, "budget exceeded");
    printf("  escape.%s stopped after %.1f ms\n", fn, ms);
    assert_true(ms < 250.0);
}

static void test_infinite_loop(void **state)
{
    expect_stopped(*state, "loop");
}

static void test_loop_inside_pcall(void **state)
{
    expect_stopped(*state, "pcall_loop");
    expect_stopped(*state, "xpcall_loop");
}

static void test_loop_inside_coroutine(void **state)
{
    expect_stopped(*state, "coroutine_loop");
    expect_stopped(*state, "coroutine_resume_loop");
}

static void test_memory_errors_swallowed_in_loop(void **state)
{
    expect_stopped(*state, "pcall_memory_loop");
}

/* The instruction cap counts the library work a rule asks for: with a
 * generous clock it is what stops a loop of string.rep calls, and its
 * message says so; a bare loop of VM instructions is stopped by the clock,
 * however generous the cap. */
static void test_instruction_and_time_budgets(void **state)
{
    (void)state;
    lh_limits_t lim = {.instructions = 100000, .time_ms = 10000};
    lh_state_t *s = load_fixtures(&lim);
    double ms =
        expect_fail(s, "rep_loop", LH_EBUDGET, "instruction budget exceeded (100000 instructions)");
    assert_true(ms < 1000.0);
    lh_free(s);

    lim = (lh_limits_t){.instructions = 1ull << 50, .time_ms = 30};
    s = load_fixtures(&lim);
    ms = expect_fail(s, "loop", LH_EBUDGET, "time budget exceeded (30 ms)");
    assert_true(ms >= 29.0 && ms < 250.0);
    lh_free(s);
}

static void expect_memory_recovered(lh_state_t *s, const char *fn)
{
    expect_fail(s, fn, LH_EMEMORY, "memory budget exceeded");
    printf("  escape.%s: %zu bytes in use afterwards\n", fn, lh_mem_used(s));
    assert_true(lh_mem_used(s) < LH_DEFAULT_MEM_BYTES / 4);
}

static void test_string_rep_bomb(void **state)
{
    expect_memory_recovered(*state, "string_bomb");
}

static void test_table_growth_bomb(void **state)
{
    expect_memory_recovered(*state, "table_bomb");
    expect_memory_recovered(*state, "concat_bomb");
    /* Repeated bombs do not leave the state worse off. */
    expect_memory_recovered(*state, "table_bomb");
}

static void test_unbounded_recursion(void **state)
{
    lh_state_t *s = *state;
    char err[4096];
    int rc = lh_call(s, "escape", "recursion", 0, 1, err, sizeof err);
    assert_true(rc == LH_EMEMORY || (rc == LH_ERUN && strstr(err, "stack overflow")));
    assert_int_equal(lua_gettop(lh_lua(s)), 0);
    assert_true(lh_mem_used(s) < LH_DEFAULT_MEM_BYTES / 4);
    assert_still_works(s);
}

/* A "\27Lua" chunk is refused by the loader (mode "t"), from a buffer and
 * from a rules file alike. string.dump is unavailable, so it is crafted. */
static void test_bytecode_refused(void **state)
{
    (void)state;
    static const char chunk[] = "\x1bLua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08xV\0\0\0\0\0\0";
    char err[1024];
    lh_state_t *s = lh_new(NULL, err, sizeof err);
    assert_non_null(s);
    int rc = lh_load_buffer(s, "bin", "rules/bin.lua", chunk, sizeof chunk - 1, err, sizeof err);
    assert_int_equal(rc, LH_ERUN);
    assert_non_null(strstr(err, "attempt to load a binary chunk"));
    const char *src = "function f() return 7 end";
    assert_int_equal(lh_load_buffer(s, "text", "rules/text.lua", src, strlen(src), err, sizeof err),
                     LH_OK);
    assert_int_equal(lh_freeze(s), LH_OK);
    assert_int_equal(lh_call(s, "bin", "f", 0, 1, err, sizeof err), LH_EMISUSE);
    assert_int_equal(lh_call(s, "text", "f", 0, 1, err, sizeof err), LH_OK);
    assert_int_equal(lua_tointeger(lh_lua(s), -1), 7);
    lua_pop(lh_lua(s), 1);
    lh_free(s);
}

/* A scratch rules directory "<tmp>/rules" under the working directory. */
typedef struct scratch {
    char root[64];
    char dir[96];
} scratch_t;

static void scratch_make(scratch_t *t)
{
    snprintf(t->root, sizeof t->root, "crier-lh-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->dir, sizeof t->dir, "%s/rules", t->root);
    assert_int_equal(mkdir(t->dir, 0700), 0);
}

static void scratch_write(scratch_t *t, const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", t->dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void scratch_remove(scratch_t *t, const char *const *names)
{
    char path[256];
    for (size_t i = 0; names[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", t->dir, names[i]);
        unlink(path);
    }
    rmdir(t->dir);
    rmdir(t->root);
}

static int load_scratch(scratch_t *t, const char *const *files, char *version, char *err,
                        size_t errlen)
{
    lh_state_t *s = lh_new(NULL, err, errlen);
    assert_non_null(s);
    int rc = lh_load_dir(s, t->dir, files, err, errlen);
    if (version)
        snprintf(version, 17, "%s", lh_version(s));
    lh_free(s);
    return rc;
}

static void test_bytecode_file_refused(void **state)
{
    (void)state;
    scratch_t t;
    scratch_make(&t);
    static const char chunk[] = "\x1bLua\x54\x00 anything";
    scratch_write(&t, "channels.lua", chunk, sizeof chunk - 1);
    const char *const files[] = {"channels.lua", NULL};
    char err[1024];
    assert_int_equal(load_scratch(&t, files, NULL, err, sizeof err), LH_ERUN);
    assert_non_null(strstr(err, "rules/channels.lua"));
    assert_non_null(strstr(err, "binary chunk"));
    scratch_remove(&t, files);
}

static void test_version_hash(void **state)
{
    (void)state;
    scratch_t t;
    scratch_make(&t);
    const char *const files[] = {"channels.lua", "timing.lua", NULL};
    const char *a = "function select() return {'email'} end\n";
    const char *b = "function select() return {'sms'} end\n";
    const char *timing = "function send_at(m, c, now) return now end\n";
    char v1[17], v2[17], v3[17], err[1024];

    scratch_write(&t, "channels.lua", a, strlen(a));
    scratch_write(&t, "timing.lua", timing, strlen(timing));
    assert_int_equal(load_scratch(&t, files, v1, err, sizeof err), LH_OK);
    assert_int_equal(strlen(v1), 16);
    scratch_write(&t, "channels.lua", b, strlen(b));
    assert_int_equal(load_scratch(&t, files, v2, err, sizeof err), LH_OK);
    assert_string_not_equal(v1, v2);
    scratch_write(&t, "channels.lua", a, strlen(a));
    assert_int_equal(load_scratch(&t, files, v3, err, sizeof err), LH_OK);
    assert_string_equal(v1, v3);
    /* The same bytes under another name are another rule set. */
    const char *const swapped[] = {"timing.lua", "channels.lua", NULL};
    assert_int_equal(load_scratch(&t, swapped, v3, err, sizeof err), LH_OK);
    assert_string_not_equal(v1, v3);
    scratch_remove(&t, files);
}

static void test_syntax_error_names_file_and_line(void **state)
{
    (void)state;
    scratch_t t;
    scratch_make(&t);
    const char *bad = "-- fine\nfunction chain(m)\n  return {m.primary,, 'sms'}\nend\n";
    scratch_write(&t, "fallback.lua", bad, strlen(bad));
    const char *const files[] = {"fallback.lua", NULL};
    char err[1024];
    assert_int_equal(load_scratch(&t, files, NULL, err, sizeof err), LH_ERUN);
    if (!strstr(err, "rules/fallback.lua:3:"))
        fail_msg("no file:line in: %s", err);
    /* A missing file is reported by name too. */
    const char *const missing[] = {"batching.lua", NULL};
    assert_int_equal(load_scratch(&t, missing, NULL, err, sizeof err), LH_EMISUSE);
    assert_non_null(strstr(err, "rules/batching.lua"));
    scratch_remove(&t, files);
}

static void test_load_time_loop_is_bounded(void **state)
{
    (void)state;
    char err[1024];
    lh_state_t *s = lh_new(NULL, err, sizeof err);
    assert_non_null(s);
    const char *src = "local n = 0\nwhile true do n = n + 1 end\n";
    double t0 = now_ms();
    assert_int_equal(
        lh_load_buffer(s, "timing", "rules/timing.lua", src, strlen(src), err, sizeof err),
        LH_EBUDGET);
    assert_true(now_ms() - t0 < 250.0);
    assert_non_null(strstr(err, "rules/timing.lua:2:"));
    lh_free(s);
}

static void test_register_and_log(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    lua_pushinteger(L, 21);
    assert_int_equal(lh_call(s, "ok", "host_double", 1, 1, err, sizeof err), LH_OK);
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_pop(L, 1);
    /* Registration closes with the freeze. */
    assert_int_equal(lh_register(s, "late", host_double), LH_EMISUSE);

    assert_int_equal(lh_call(s, "ok", "log_it", 0, 1, err, sizeof err), LH_OK);
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
    assert_int_equal(lh_call(s, "ok", "bad_log_level", 0, 0, err, sizeof err), LH_ERUN);
    assert_non_null(strstr(err, "level must be"));
    assert_still_works(s);

    lh_state_t *fresh = lh_new(NULL, err, sizeof err);
    assert_non_null(fresh);
    assert_int_equal(lh_register(fresh, "log", host_double), LH_EMISUSE); /* built in */
    assert_int_equal(lh_register(fresh, "__index", host_double), LH_EMISUSE);
    assert_int_equal(lh_register(fresh, "bad name", host_double), LH_EMISUSE);
    lh_free(fresh);
}

static void test_unknown_module_or_function(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    lua_pushinteger(L, 1);
    assert_int_equal(lh_call(s, "nope", "f", 1, 1, err, sizeof err), LH_EMISUSE);
    assert_int_equal(lua_gettop(L), 0); /* the argument was consumed */
    assert_int_equal(lh_call(s, "ok", "nope", 0, 1, err, sizeof err), LH_EMISUSE);
    /* A base function is not a module entry point. */
    assert_int_equal(lh_call(s, "ok", "pairs", 0, 1, err, sizeof err), LH_EMISUSE);
    assert_int_equal(lua_gettop(L), 0);
    assert_still_works(s);
}

static void test_json_round_trip(void **state)
{
    lh_state_t *s = *state;
    char err[1024];
    cJSON *in = cJSON_Parse("{\"type\":\"plan_created\",\"urgency\":\"high\",\"n\":3,"
                            "\"ratio\":0.25,\"ok\":true,\"list\":[1,\"two\",{\"x\":[]}]}");
    assert_non_null(in);
    const cJSON *args[] = {in};
    cJSON *out = NULL;
    assert_int_equal(lh_call_json(s, "ok", "echo", args, 1, &out, err, sizeof err), LH_OK);
    assert_true(cJSON_Compare(in, out, 1));
    cJSON_Delete(out);
    cJSON_Delete(in);

    assert_int_equal(lh_call_json(s, "ok", "decision", NULL, 0, &out, err, sizeof err), LH_OK);
    char *text = cJSON_PrintUnformatted(out);
    cJSON *want =
        cJSON_Parse("{\"primary\":\"email\",\"fallback\":[\"sms\",\"whatsapp\"],\"send_at\":12.5,"
                    "\"batch\":false}");
    if (!cJSON_Compare(want, out, 1))
        fail_msg("unexpected decision %s", text);
    free(text);
    cJSON_Delete(want);
    cJSON_Delete(out);
    assert_int_equal(lua_gettop(lh_lua(s)), 0);
}

static void test_json_bounds(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[1024];
    cJSON *out = NULL;

    cJSON *n = cJSON_CreateNumber(5);
    const cJSON *args[] = {n};
    assert_int_equal(lh_call_json(s, "ok", "big", args, 1, &out, err, sizeof err), LH_OK);
    assert_int_equal(cJSON_GetArraySize(out), 5);
    cJSON_Delete(out);
    /* A rule cannot hand back something huge. */
    cJSON_SetNumberValue(n, 200000);
    assert_int_equal(lh_call_json(s, "ok", "big", args, 1, &out, err, sizeof err), LH_ECONVERT);
    assert_null(out);
    assert_non_null(strstr(err, "more than"));
    cJSON_Delete(n);
    /* Functions do not convert. */
    assert_int_equal(lh_call_json(s, "ok", "returns_function", NULL, 0, &out, err, sizeof err),
                     LH_ECONVERT);
    assert_non_null(strstr(err, "function"));
    assert_int_equal(lua_gettop(L), 0);

    /* Nor does an input nested past the bound: nothing is left pushed. */
    cJSON *deep = cJSON_CreateArray();
    cJSON *cur = deep;
    for (int i = 0; i < LH_JSON_MAX_DEPTH + 4; i++) {
        cJSON *next = cJSON_CreateArray();
        cJSON_AddItemToArray(cur, next);
        cur = next;
    }
    assert_int_equal(lh_push_json(s, deep, err, sizeof err), LH_ECONVERT);
    assert_int_equal(lua_gettop(L), 0);
    cJSON_Delete(deep);

    /* A table that contains itself is bounded by depth. */
    const char *cyc = "local t = {} t.self = t function f() return t end";
    lh_state_t *c = lh_new(NULL, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(lh_load_buffer(c, "cyc", "cyc.lua", cyc, strlen(cyc), err, sizeof err), LH_OK);
    assert_int_equal(lh_freeze(c), LH_OK);
    assert_int_equal(lh_call_json(c, "cyc", "f", NULL, 0, &out, err, sizeof err), LH_ECONVERT);
    assert_non_null(strstr(err, "deeper"));
    lh_free(c);
    assert_still_works(s);
}

/* Read-only views: a rule reads an input like a table but cannot change
 * it, even through pcall, table.insert or setmetatable, and what it hands
 * back converts as what it shows. */
static void test_readonly_views(void **state)
{
    (void)state;
    static const char src[] =
        "function write(t) t.type = 'x' end\n"
        "function write_nested(t) t.list[1] = 'x' end\n"
        "function insert(t) table.insert(t.list, 'x') end\n"
        "function remeta(t) setmetatable(t, {}) end\n"
        "function swallowed(t)\n"
        "  local ok = pcall(function() t.type = 'x' end)\n"
        "  return {ok = ok, type = t.type}\n"
        "end\n"
        "function reads(t)\n"
        "  local keys = 0\n"
        "  for k, v in pairs(t) do keys = keys + 1 end\n"
        "  local items = {}\n"
        "  for i, v in ipairs(t.list) do items[i] = v end\n"
        "  return {keys = keys, len = #t.list, items = items, type = t.type,\n"
        "          raw = rawget(t, 'type') == nil, meta = getmetatable(t)}\n"
        "end\n"
        "function echo(t) return t end\n";
    char err[1024];
    lh_state_t *s = lh_new(NULL, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(lh_load_buffer(s, "ro", "ro.lua", src, sizeof src - 1, err, sizeof err),
                     LH_OK);
    assert_int_equal(lh_freeze(s), LH_OK);
    lua_State *L = lh_lua(s);

    /* {type = "welcome", list = view of {"email", "sms"}} */
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "welcome");
    lua_setfield(L, -2, "type");
    lua_createtable(L, 2, 0);
    lua_pushliteral(L, "email");
    lua_rawseti(L, -2, 1);
    lua_pushliteral(L, "sms");
    lua_rawseti(L, -2, 2);
    lh_readonly(s);
    lua_setfield(L, -2, "list");
    lh_readonly(s);
    int view = lua_gettop(L);

    static const char *const refused[] = {"write", "write_nested", "insert", "remeta"};
    for (size_t i = 0; i < 4; i++) {
        lua_pushvalue(L, view);
        int rc = lh_call(s, "ro", refused[i], 1, 0, err, sizeof err);
        if (rc != LH_ERUN)
            fail_msg("ro.%s: rc %d (%s)", refused[i], rc, err);
        if (i < 3 && !strstr(err, "read-only input"))
            fail_msg("ro.%s: %s", refused[i], err);
    }

    cJSON *out = NULL;
    lua_pushvalue(L, view);
    assert_int_equal(lh_call(s, "ro", "swallowed", 1, 1, err, sizeof err), LH_OK);
    assert_int_equal(lh_to_json(s, -1, &out, err, sizeof err), LH_OK);
    lua_pop(L, 1);
    cJSON *want = cJSON_Parse("{\"ok\":false,\"type\":\"welcome\"}");
    assert_true(cJSON_Compare(want, out, 1));
    cJSON_Delete(want);
    cJSON_Delete(out);

    lua_pushvalue(L, view);
    assert_int_equal(lh_call(s, "ro", "reads", 1, 1, err, sizeof err), LH_OK);
    assert_int_equal(lh_to_json(s, -1, &out, err, sizeof err), LH_OK);
    lua_pop(L, 1);
    want = cJSON_Parse("{\"keys\":2,\"len\":2,\"items\":[\"email\",\"sms\"],"
                       "\"type\":\"welcome\",\"raw\":true,\"meta\":false}");
    char *text = cJSON_PrintUnformatted(out);
    if (!cJSON_Compare(want, out, 1))
        fail_msg("reads: %s", text);
    free(text);
    cJSON_Delete(want);
    cJSON_Delete(out);

    /* handed back, a view converts as its contents, and lh_push_raw finds
     * the table behind it (and leaves other values alone) */
    lua_pushvalue(L, view);
    assert_int_equal(lh_call(s, "ro", "echo", 1, 1, err, sizeof err), LH_OK);
    assert_int_equal(lh_to_json(s, -1, &out, err, sizeof err), LH_OK);
    want = cJSON_Parse("{\"type\":\"welcome\",\"list\":[\"email\",\"sms\"]}");
    assert_true(cJSON_Compare(want, out, 1));
    cJSON_Delete(want);
    cJSON_Delete(out);
    lh_push_raw(s, -1);
    lua_pushliteral(L, "type");
    assert_int_equal(lua_rawget(L, -2), LUA_TSTRING);
    lua_pop(L, 3);
    lua_pushinteger(L, 7);
    lh_push_raw(s, -1);
    assert_int_equal(lua_tointeger(L, -1), 7);
    lua_settop(L, view - 1);
    assert_int_equal(lua_gettop(L), 0);
    lh_free(s);
}

static void test_trivial_call_time(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[256];
    const int n = 20000;
    double t0 = now_ms();
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, i);
        lua_pushinteger(L, 1);
        assert_int_equal(lh_call(s, "ok", "add", 2, 1, err, sizeof err), LH_OK);
        assert_int_equal(lua_tointeger(L, -1), i + 1);
        lua_pop(L, 1);
    }
    double per = (now_ms() - t0) * 1000.0 / n;
    printf("  trivial lh_call: %.2f us per call (%d calls), %zu bytes in use\n", per, n,
           lh_mem_used(s));
}

/* Each payload stops within the budget's order of time, with an error that
 * names the budget, and the state answers the next call. */
static void expect_budget(lh_state_t *s, const char *fn, const char *want)
{
    double ms = expect_fail(s, fn, LH_EBUDGET, want);
    printf("  escape.%s stopped after %.1f ms\n", fn, ms);
    assert_true(ms < 1000.0);
}

static void test_handlers_run_under_the_budget(void **state)
{
    lh_state_t *s = *state;
    expect_budget(s, "xpcall_handler_loop", "budget exceeded");
    expect_budget(s, "xpcall_handler_count", "budget exceeded");
    expect_budget(s, "close_handler_loop", "budget exceeded");
    expect_budget(s, "wrap_close_handler_loop", "budget exceeded");
}

/* A coroutine the budget stopped keeps its close handlers from running in
 * a later call too, where the budget is fresh but the thread's hooks are
 * still off. */
static void test_stopped_coroutine_closed_later(void **state)
{
    lh_state_t *s = *state;
    lua_State *L = lh_lua(s);
    char err[2048];
    expect_budget(s, "stop_a_coroutine", "budget exceeded");
    double t0 = now_ms();
    int rc = lh_call(s, "escape", "close_stopped_later", 0, 1, err, sizeof err);
    assert_true(now_ms() - t0 < 1000.0);
    if (rc != LH_OK)
        fail_msg("close_stopped_later: %s", err);
    assert_non_null(strstr(lua_tostring(L, -1), "false: coroutine was stopped by the budget"));
    lua_pop(L, 1);
    assert_still_works(s);
}

static void test_c_calls_are_costed(void **state)
{
    lh_state_t *s = *state;
    expect_budget(s, "rep_empty", "instruction budget exceeded");
    expect_budget(s, "rep_method", "string.rep would take");
    expect_budget(s, "rep_sep_only", "string.rep would take");
    expect_budget(s, "table_move", "table.move would take");
    expect_budget(s, "sort_bomb", "table.sort would take");
    expect_budget(s, "concat_c_index", "table.concat would take");
    expect_budget(s, "remove_huge_len", "table.remove would take");
    expect_budget(s, "insert_huge_len", "table.insert would take");
    expect_budget(s, "unpack_huge", "table.unpack would take");
    expect_budget(s, "find_long_pattern", "pattern too complex for a 600000-byte string");
    expect_budget(s, "match_long_literal", "pattern too complex");
    expect_budget(s, "gsub_long_literal", "pattern too complex");
}

/* Loops of cheap guarded calls: the ordinary budget, clock included, stops
 * them. */
static void test_costed_loops_stop(void **state)
{
    lh_state_t *s = *state;
    expect_budget(s, "utf8_len_loop", "budget exceeded");
    expect_budget(s, "format_loop", "budget exceeded");
}

/* A slow C function that returns just before the rule does is caught when
 * the call returns: its answer is not taken. */
static void test_clock_checked_on_return(void **state)
{
    lh_state_t *s = *state;
    double ms = expect_fail(s, "slow_host", LH_EBUDGET, "time budget exceeded");
    assert_true(ms >= 100.0 && ms < 1000.0);
}

/* The guarded functions keep the library's answers. The clock is generous:
 * building megabyte strings is slow in a sanitizer build, and the point
 * here is the answers and that the work is linear. */
static void test_guarded_functions_agree(void **state)
{
    (void)state;
    lh_limits_t lim = {.time_ms = 5000};
    lh_state_t *s = load_fixtures(&lim);
    lua_State *L = lh_lua(s);
    char err[2048];
    static const struct {
        const char *fn, *want;
    } cases[] = {
        {"plain_find_semantics", "3:3 4:4 nil:nil 6:5 4:5 1:1 2:2 2:2"},
        {"xpcall_semantics", "true,5,false,h:boom,2,20,true,ran"},
        {"sort_and_concat", "fig,pear,kiwi/ab-ab-ab/2/3/912"},
        {"long_plain_find", "nil/1000001"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double t0 = now_ms();
        int rc = lh_call(s, "ok", cases[i].fn, 0, 1, err, sizeof err);
        double ms = now_ms() - t0;
        if (rc != LH_OK)
            fail_msg("ok.%s: %s", cases[i].fn, err);
        assert_string_equal(lua_tostring(L, -1), cases[i].want);
        lua_pop(L, 1);
        printf("  ok.%s: %.1f ms\n", cases[i].fn, ms);
        assert_true(ms < 1000.0);
    }
    lh_free(s);
}

/* A huge error value is cut before the traceback is built, so reporting it
 * needs only a small, fixed room past the memory budget. */
static void test_traceback_respects_the_cap(void **state)
{
    (void)state;
    lh_limits_t lim = {.time_ms = 5000}; /* a 3 MB string is slow to build under ASan */
    lh_state_t *s = load_fixtures(&lim);
    char err[4096];
    int rc = lh_call(s, "escape", "huge_error", 0, 1, err, sizeof err);
    assert_int_equal(rc, LH_ERUN);
    assert_non_null(strstr(err, "bytes more)"));
    assert_non_null(strstr(err, "stack traceback:"));
    printf("  peak %zu bytes\n", lh_mem_peak(s));
    assert_true(lh_mem_peak(s) <= LH_DEFAULT_MEM_BYTES + 64u * 1024u);
    assert_still_works(s);
    lh_free(s);
}

/* A payload at a file's top level stops the load within the budget. */
static void test_load_time_payloads(void **state)
{
    (void)state;
    static const char *const srcs[] = {
        "xpcall(function() while true do end end, function(e) while true do end end)\n",
        "local co = coroutine.create(function()\n"
        "  local g <close> = setmetatable({}, {__close = function() while true do end end})\n"
        "  while true do end end)\n"
        "coroutine.resume(co)\ncoroutine.close(co)\n",
        "local n = #string.rep('', math.maxinteger)\n",
        "table.move({}, 1, 1e15, 2, {})\n",
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        char err[1024];
        lh_state_t *s = lh_new(NULL, err, sizeof err);
        assert_non_null(s);
        double t0 = now_ms();
        int rc = lh_load_buffer(s, "channels", "rules/channels.lua", srcs[i], strlen(srcs[i]), err,
                                sizeof err);
        double ms = now_ms() - t0;
        printf("  load payload %zu: rc %d after %.1f ms: %.80s\n", i, rc, ms, err);
        assert_int_equal(rc, LH_EBUDGET);
        assert_non_null(strstr(err, "budget exceeded"));
        assert_true(ms < 1000.0);
        lh_free(s);
    }
}

#define CASE(f)      cmocka_unit_test_setup_teardown(f, setup, teardown)
#define CASE_SLOW(f) cmocka_unit_test_setup_teardown(f, setup_slow_clock, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        CASE(test_normal_calls),
        CASE(test_os_execute),
        CASE(test_io_open),
        CASE(test_require),
        CASE(test_load_family),
        CASE(test_string_dump),
        CASE(test_debug_package_collect_print),
        CASE(test_rawset_global),
        CASE(test_setmetatable_global),
        CASE(test_string_metatable),
        CASE(test_new_global_after_load),
        CASE(test_read_undefined_global),
        CASE(test_gc_finalizer_refused),
        CASE(test_pattern_bombs),
        CASE(test_runtime_error_has_file_line),
        CASE(test_infinite_loop),
        CASE(test_loop_inside_pcall),
        CASE(test_loop_inside_coroutine),
        CASE(test_memory_errors_swallowed_in_loop),
        cmocka_unit_test(test_instruction_and_time_budgets),
        CASE(test_string_rep_bomb),
        CASE(test_table_growth_bomb),
        CASE_SLOW(test_unbounded_recursion),
        cmocka_unit_test(test_bytecode_refused),
        cmocka_unit_test(test_bytecode_file_refused),
        cmocka_unit_test(test_version_hash),
        cmocka_unit_test(test_syntax_error_names_file_and_line),
        cmocka_unit_test(test_load_time_loop_is_bounded),
        CASE(test_register_and_log),
        CASE(test_unknown_module_or_function),
        CASE(test_json_round_trip),
        CASE(test_json_bounds),
        CASE(test_trivial_call_time),
        cmocka_unit_test(test_readonly_views),
        CASE(test_handlers_run_under_the_budget),
        CASE(test_stopped_coroutine_closed_later),
        CASE_SLOW(test_c_calls_are_costed),
        CASE(test_costed_loops_stop),
        CASE(test_clock_checked_on_return),
        cmocka_unit_test(test_guarded_functions_agree),
        cmocka_unit_test(test_traceback_respects_the_cap),
        cmocka_unit_test(test_load_time_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
