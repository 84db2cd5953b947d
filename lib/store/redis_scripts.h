// The server-side Lua scripts of the Redis store (docs/redis.md, "Scripts").
//
// Every step that reads and then writes, or writes more than one key, is one
// script: Redis runs a script atomically, so no other client sees a half-done
// step. Each script gets its keys in KEYS, and every key it touches (declared
// or built from a prefix passed in ARGV) carries the same hash tag, so each
// script stays within one cluster slot.
//
// Conventions shared by all scripts (kPreamble):
// - Time is the server's: TIME, in milliseconds. A deadline d is live while
//   now < d. Keys with a deadline also get PEXPIREAT d so Redis reclaims them;
//   the scripts compare against the stored deadline themselves, because Redis
//   keeps a key until now > d.
// - Numbers travel as decimal strings (Lua numbers are doubles: integers are
//   exact below 2^53). A deadline at or past 2^53 saturates to INT64_MAX and
//   the key gets no expiry.
// - A key of the wrong type or a record without its fields aborts the script
//   with an error reply "CORRUPT redis key '<key>' ..." naming the key.
#ifndef XG2G_LIB_STORE_REDIS_SCRIPTS_H_
#define XG2G_LIB_STORE_REDIS_SCRIPTS_H_

#include <string_view>

namespace xg2g::redis_scripts {

inline constexpr std::string_view kPreamble = R"lua(
local INT64_MAX = '9223372036854775807'
local function fail(key, why)
  error({err = "CORRUPT redis key '" .. key .. "' " .. why})
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function int(n)
  return string.format('%d', n)
end
local function deadline(now, ttl)
  local d = now + tonumber(ttl)
  if d >= 9007199254740992 then return INT64_MAX end
  return int(d)
end
local function expire_at(key, d)
  if d == INT64_MAX then redis.call('PERSIST', key) else redis.call('PEXPIREAT', key, d) end
end
local function expect(key, want)
  local got = redis.call('TYPE', key).ok
  if got == 'none' then return false end
  if got ~= want then fail(key, 'holds a ' .. got .. ', not a ' .. want) end
  return true
end
local function counter(key)
  if not expect(key, 'string') then return 0 end
  local n = tonumber(redis.call('GET', key))
  if not n or n < 0 or n ~= math.floor(n) then fail(key, 'is not a counter') end
  return n
end
local function next_revision(key)
  counter(key)
  return redis.call('INCR', key)
end
local function read_lease(key)
  if not expect(key, 'hash') then return nil end
  local h = redis.call('HMGET', key, 'owner', 'token', 'exp')
  if not h[1] or not tonumber(h[2]) or not tonumber(h[3]) then
    fail(key, 'is not a lease (owner, token, exp)')
  end
  return h
end
local function read_idem(key)
  if not expect(key, 'hash') then return nil end
  local h = redis.call('HMGET', key, 'session', 'fingerprint', 'exp')
  if not h[1] or not h[2] or not tonumber(h[3]) then
    fail(key, 'is not an idempotency entry (session, fingerprint, exp)')
  end
  return h
end
-- Gives `lease` (named `key` in the index) to `owner` with a new fencing
-- token from `fence`. -> {token, exp}
local function grant_lease(lease, fence, index, key, owner, ttl, now)
  local token = counter(fence) + 1
  local floor = now_us()
  if token < floor then token = floor end
  local t = int(token)
  redis.call('SET', fence, t)
  local d = deadline(now, ttl)
  redis.call('DEL', lease)
  redis.call('HSET', lease, 'owner', owner, 'token', t, 'exp', d)
  expire_at(lease, d)
  redis.call('ZADD', index, d, key)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', int(now))
  return {t, d}
end
local function write_session(rec, ids, rev, id, head, tail)
  expect(ids, 'zset')
  local r = next_revision(rev)
  redis.call('SET', rec, head .. int(r) .. tail)
  redis.call('ZADD', ids, 0, id)
  return r
end
)lua";

// KEYS: record, ids, revision. ARGV: id, head, tail (the record's JSON split
// around its revision). -> revision
inline constexpr std::string_view kPutSession = R"lua(
return int(write_session(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3]))
)lua";

// KEYS: record, ids, revision. ARGV: id, expected revision, head, tail.
// -> {0} gone, {1} changed meanwhile, {2, revision} written,
//    {3} the stored record shows no revision
inline constexpr std::string_view kCasSession = R"lua(
if not expect(KEYS[1], 'string') then return {0} end
local cur = redis.call('GET', KEYS[1])
local r = string.match(cur, ',"revision":(%d+)[,}]')
if not r then return {3} end
if r ~= ARGV[2] then return {1} end
return {2, int(write_session(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[3], ARGV[4]))}
)lua";

// KEYS: record, ids. ARGV: id. -> 1 deleted, 0 there was none
inline constexpr std::string_view kDeleteSession = R"lua(
expect(KEYS[2], 'zset')
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
)lua";

// One page of sessions in id order, read in one step.
// KEYS: ids. ARGV: offset, limit, record key prefix.
// -> {total, id, record, id, record, ...}; a record is false when missing,
//    the integer 0 when its key holds another type
inline constexpr std::string_view kListSessions = R"lua(
if not expect(KEYS[1], 'zset') then return {0} end
local total = redis.call('ZCARD', KEYS[1])
local offset = tonumber(ARGV[1])
if offset >= total then return {total} end
local ids = redis.call('ZRANGE', KEYS[1], int(offset), int(offset + tonumber(ARGV[2]) - 1))
local out = {total}
for _, id in ipairs(ids) do
  local v = redis.pcall('GET', ARGV[3] .. id)
  if type(v) == 'table' then v = 0 end
  out[#out + 1] = id
  out[#out + 1] = v
end
return out
)lua";

// The sessions after id ARGV[1] ('' from the start), at most ARGV[2].
// KEYS: ids. ARGV: after, count, record key prefix. -> {id, record, ...} as
// kListSessions
inline constexpr std::string_view kScanSessions = R"lua(
if not expect(KEYS[1], 'zset') then return {} end
local min = '-'
if ARGV[1] ~= '' then min = '(' .. ARGV[1] end
local ids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  local v = redis.pcall('GET', ARGV[3] .. id)
  if type(v) == 'table' then v = 0 end
  out[#out + 1] = id
  out[#out + 1] = v
end
return out
)lua";

// KEYS: idempotency key, record, ids, revision.
// ARGV: fingerprint, ttl_ms, id, head, tail.
// -> {0, session, fingerprint, exp} known and live: nothing written;
//    {1, revision, exp} key and session stored
inline constexpr std::string_view kPutWithIdempotency = R"lua(
local now = now_ms()
local h = read_idem(KEYS[1])
if h and tonumber(h[3]) > now then return {0, h[1], h[2], h[3]} end
local r = write_session(KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5])
local d = deadline(now, ARGV[2])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'session', ARGV[3], 'fingerprint', ARGV[1], 'exp', d)
expire_at(KEYS[1], d)
return {1, int(r), d}
)lua";

// KEYS: idempotency key. -> {0} unknown or expired; {1, session, fingerprint, exp}
inline constexpr std::string_view kGetIdempotency = R"lua(
local now = now_ms()
local h = read_idem(KEYS[1])
if not h or tonumber(h[3]) <= now then return {0} end
return {1, h[1], h[2], h[3]}
)lua";

// KEYS: idempotency key. -> 1 a live key (or one that is not a valid entry:
// deleting is the way to clear it) was deleted, 0 unknown or expired
inline constexpr std::string_view kDeleteIdempotency = R"lua(
local now = now_ms()
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return 0 end
local e = nil
if t == 'hash' then e = tonumber(redis.call('HGET', KEYS[1], 'exp')) end
redis.call('DEL', KEYS[1])
if e and e <= now then return 0 end
return 1
)lua";

// KEYS: lease, fence counter, lease index. ARGV: lease key, owner, ttl_ms.
// -> {0, holder, exp, now} held by another owner;
//    {1, token, exp} renewed (the holder again);
//    {2, token, exp} granted with a new token
// A new token is greater than the key's last one and than the server's clock
// in microseconds: tokens keep increasing even if the counter was lost
// (a restart without persistence), as long as that clock does not go back.
inline constexpr std::string_view kAcquireLease = R"lua(
local now = now_ms()
expect(KEYS[3], 'zset')
local h = read_lease(KEYS[1])
if h and tonumber(h[3]) > now then
  if h[1] ~= ARGV[2] then return {0, h[1], h[3], int(now)} end
  local d = deadline(now, ARGV[3])
  redis.call('HSET', KEYS[1], 'exp', d)
  expire_at(KEYS[1], d)
  redis.call('ZADD', KEYS[3], d, ARGV[1])
  return {1, h[2], d}
end
return {2, unpack(grant_lease(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], now))}
)lua";

// KEYS: lease index. ARGV: owner, ttl_ms, lease key prefix, fence key
// prefix, then the lease keys in the caller's order.
// -> {0} every key is held (by anyone, the owner included);
//    {position, token, exp} the key at that position (from 1) granted with a
//    new token
// The index gives the deadlines (ZMSCORE, 256 keys at a time); a key it shows
// absent or past is checked against its lease record before it is granted.
inline constexpr std::string_view kFirstFreeLease = R"lua(
local now = now_ms()
local indexed = expect(KEYS[1], 'zset')
local skip = 4
local chunk = 256
for first = skip + 1, #ARGV, chunk do
  local last = math.min(first + chunk - 1, #ARGV)
  local scores = {}
  if indexed then scores = redis.call('ZMSCORE', KEYS[1], unpack(ARGV, first, last)) end
  for i = first, last do
    local s = scores[i - first + 1]
    if not s or tonumber(s) <= now then
      local h = read_lease(ARGV[3] .. ARGV[i])
      if not h or tonumber(h[3]) <= now then
        local g = grant_lease(ARGV[3] .. ARGV[i], ARGV[4] .. ARGV[i], KEYS[1], ARGV[i], ARGV[1],
                              ARGV[2], now)
        return {i - skip, g[1], g[2]}
      end
    end
  end
end
return {0}
)lua";

// KEYS: lease, lease index. ARGV: lease key, owner, ttl_ms.
// -> {0} not held; {1, holder} held by another owner; {2, token, exp} renewed
inline constexpr std::string_view kRenewLease = R"lua(
local now = now_ms()
expect(KEYS[2], 'zset')
local h = read_lease(KEYS[1])
if not h or tonumber(h[3]) <= now then
  if h then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
  return {0}
end
if h[1] ~= ARGV[2] then return {1, h[1]} end
local d = deadline(now, ARGV[3])
redis.call('HSET', KEYS[1], 'exp', d)
expire_at(KEYS[1], d)
redis.call('ZADD', KEYS[2], d, ARGV[1])
return {2, h[2], d}
)lua";

// KEYS: lease, lease index. ARGV: lease key, owner.
// -> {0} not held; {1, holder} held by another owner; {2} released
inline constexpr std::string_view kReleaseLease = R"lua(
local now = now_ms()
expect(KEYS[2], 'zset')
local h = read_lease(KEYS[1])
if not h or tonumber(h[3]) <= now then
  if h then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
  return {0}
end
if h[1] ~= ARGV[2] then return {1, h[1]} end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {2}
)lua";

// KEYS: lease. -> {0} not held; {1, owner, token, exp}
inline constexpr std::string_view kGetLease = R"lua(
local now = now_ms()
local h = read_lease(KEYS[1])
if not h or tonumber(h[3]) <= now then return {0} end
return {1, h[1], h[2], h[3]}
)lua";

// The live leases, after dropping expired entries from the index.
// KEYS: lease index. ARGV: lease key prefix.
// -> {key, owner, token, exp, ...} in no particular order
inline constexpr std::string_view kListLeases = R"lua(
local now = now_ms()
if not expect(KEYS[1], 'zset') then return {} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', int(now))
local out = {}
for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = read_lease(ARGV[1] .. k)
  if not h then
    redis.call('ZREM', KEYS[1], k)
  elseif tonumber(h[3]) > now then
    out[#out + 1] = k
    out[#out + 1] = h[1]
    out[#out + 1] = h[2]
    out[#out + 1] = h[3]
  end
end
return out
)lua";

}  // namespace xg2g::redis_scripts

#endif  // XG2G_LIB_STORE_REDIS_SCRIPTS_H_
