/* crier.localtime and crier.from_local: the rules' view of time zones,
 * backed by src/tz (the system's tzdata), so that a rule never depends on
 * the process's TZ or on the C library's mktime. */
#include "policy/rules.h"
#include "tz/tz.h"

#include <lauxlib.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The zone this thread looked up last: one decision asks for the same zone
 * several times, and tz_get validates the name and takes a lock each time.
 * Zones are immutable and live until the process ends, so keeping the
 * pointer is safe. */
static _Thread_local struct {
    char name[TZ_NAME_MAX + 1];
    const tz_zone_t *zone;
} rules_time_last;

/* Raises (the rule's error) for an unknown zone: a bad zone name is a data
 * problem the caller must see, not something to guess around. */
static const tz_zone_t *rules_time_zone(lua_State *L, int idx)
{
    size_t len = 0;
    const char *name = luaL_checklstring(L, idx, &len);
    if (rules_time_last.zone && len <= TZ_NAME_MAX && strlen(name) == len &&
        memcmp(rules_time_last.name, name, len + 1) == 0)
        return rules_time_last.zone;
    char err[128];
    const tz_zone_t *z = tz_get(name, err, sizeof err);
    if (!z)
        luaL_error(L, "time zone: %s", err);
    if (len <= TZ_NAME_MAX && strlen(name) == len) {
        memcpy(rules_time_last.name, name, len + 1);
        rules_time_last.zone = z;
    }
    return z;
}

static int64_t rules_time_instant(lua_State *L, int idx)
{
    lua_Number t = luaL_checknumber(L, idx);
    if (!isfinite(t) || t < (lua_Number)TZ_TIME_MIN || t > (lua_Number)TZ_TIME_MAX)
        luaL_error(L, "time out of range");
    return (int64_t)floor(t);
}

static void rules_time_setint(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* The wall clock at argument 2 in the zone at argument 1, into *l; raises
 * a Lua error for a bad zone, instant or an instant out of range. */
static void rules_time_local_args(lua_State *L, tz_local_t *l)
{
    const tz_zone_t *z = rules_time_zone(L, 1);
    int64_t t = rules_time_instant(L, 2);
    if (tz_localtime(z, t, l) != 0)
        luaL_error(L, "time out of range");
}

/* crier.localtime(tz, t) -> {year, month, day, hour, min, sec, wday
 * (1 = Sunday, as os.date), yday (1-based), isdst, utc_offset, abbr} */
static int rules_time_localtime(lua_State *L)
{
    tz_local_t l;
    rules_time_local_args(L, &l);
    lua_createtable(L, 0, 11);
    rules_time_setint(L, "year", l.year);
    rules_time_setint(L, "month", l.month);
    rules_time_setint(L, "day", l.day);
    rules_time_setint(L, "hour", l.hour);
    rules_time_setint(L, "min", l.min);
    rules_time_setint(L, "sec", l.sec);
    rules_time_setint(L, "wday", l.wday + 1);
    rules_time_setint(L, "yday", l.yday + 1);
    rules_time_setint(L, "utc_offset", l.utc_offset);
    lua_pushboolean(L, l.is_dst);
    lua_setfield(L, -2, "isdst");
    lua_pushstring(L, l.abbr);
    lua_setfield(L, -2, "abbr");
    return 1;
}

/* crier.local_fields(tz, t) -> year, month, day, hour, min, sec: the wall
 * clock of crier.localtime without building a table, for rules that only
 * need the date or the time of day. */
static int rules_time_local_fields(lua_State *L)
{
    tz_local_t l;
    rules_time_local_args(L, &l);
    lua_pushinteger(L, l.year);
    lua_pushinteger(L, l.month);
    lua_pushinteger(L, l.day);
    lua_pushinteger(L, l.hour);
    lua_pushinteger(L, l.min);
    lua_pushinteger(L, l.sec);
    return 6;
}

/* An integer field in -1e6..1e6: the bound keeps tz's normalisation far
 * from int overflow. */
static int rules_time_int(lua_State *L, lua_Integer *v)
{
    int ok = 0;
    *v = lua_tointegerx(L, -1, &ok);
    return ok && *v >= -1000000 && *v <= 1000000;
}

static int rules_time_field(lua_State *L, int idx, const char *k, int dflt, int required)
{
    int type = lua_getfield(L, idx, k);
    lua_Integer v = dflt;
    if (type == LUA_TNIL) {
        if (required)
            luaL_error(L, "from_local: field '%s' missing", k);
    } else if (!rules_time_int(L, &v)) {
        luaL_error(L, "from_local: field '%s' must be an integer", k);
    }
    lua_pop(L, 1);
    return (int)v;
}

static int rules_time_resolve(lua_State *L, const tz_zone_t *z, const tz_fields_t *f,
                              const char *what)
{
    int64_t t;
    tz_resolution_t how;
    if (tz_resolve(z, f, &t, &how) != 0)
        return luaL_error(L, "%s: time out of range", what);
    lua_pushinteger(L, (lua_Integer)t);
    lua_pushstring(L, how == TZ_GAP ? "gap" : how == TZ_OVERLAP ? "overlap" : "exact");
    return 2;
}

/* crier.from_local(tz, {year, month, day, hour=0, min=0, sec=0}) -> t, how
 * how: "exact", "gap" (moved forward by the gap) or "overlap" (the earlier
 * of the two instants). */
static int rules_time_from_local(lua_State *L)
{
    const tz_zone_t *z = rules_time_zone(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tz_fields_t f;
    f.year = rules_time_field(L, 2, "year", 0, 1);
    f.month = rules_time_field(L, 2, "month", 1, 1);
    f.day = rules_time_field(L, 2, "day", 1, 1);
    f.hour = rules_time_field(L, 2, "hour", 0, 0);
    f.min = rules_time_field(L, 2, "min", 0, 0);
    f.sec = rules_time_field(L, 2, "sec", 0, 0);
    return rules_time_resolve(L, z, &f, "from_local");
}

/* crier.from_local_fields(tz, year, month, day, hour=0, min=0, sec=0) -> t,
 * how: crier.from_local with the fields as arguments instead of a table. */
static int rules_time_from_local_fields(lua_State *L)
{
    static const char *const names[] = {"year", "month", "day", "hour", "min", "sec"};
    const tz_zone_t *z = rules_time_zone(L, 1);
    lua_settop(L, 7);
    int v[6] = {0, 1, 1, 0, 0, 0};
    for (int i = 0; i < 6; i++) {
        lua_pushvalue(L, 2 + i);
        lua_Integer x = 0;
        if (lua_isnil(L, -1)) {
            if (i < 3)
                return luaL_error(L, "from_local_fields: %s missing", names[i]);
        } else if (!rules_time_int(L, &x)) {
            return luaL_error(L, "from_local_fields: %s must be an integer", names[i]);
        } else {
            v[i] = (int)x;
        }
        lua_pop(L, 1);
    }
    tz_fields_t f = {v[0], v[1], v[2], v[3], v[4], v[5]};
    return rules_time_resolve(L, z, &f, "from_local_fields");
}

int rules_time_register(lh_state_t *h)
{
    if (lh_register(h, "localtime", rules_time_localtime) != LH_OK ||
        lh_register(h, "from_local", rules_time_from_local) != LH_OK ||
        lh_register(h, "local_fields", rules_time_local_fields) != LH_OK ||
        lh_register(h, "from_local_fields", rules_time_from_local_fields) != LH_OK)
        return -1;
    return 0;
}
