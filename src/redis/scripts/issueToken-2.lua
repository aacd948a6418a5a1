--[[
  Records a user token, unless Redis already holds the configured number of live user tokens:
  past that limit the token lives in SQL only (the seed's overload breaker).

  KEYS[1] token key (string, value = userId)   KEYS[2] live tokens zset (jti -> expires ms)
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)   ARGV[4] ttl (ms)   ARGV[5] limit

  Returns {code, stored (1 in Redis | 0 SQL only), liveCount}
]]
local rcall = redis.call
local tokenKey, liveKey = KEYS[1], KEYS[2]
local user, jti, now, ttl, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

-- Expired tokens leave the count a bounded number per call (each call adds at most one, so they
-- keep up); those still there are past their time and not counted.
local lapsed = rcall('ZRANGEBYSCORE', liveKey, '-inf', now, 'LIMIT', 0, 100)
if #lapsed > 0 then rcall('ZREM', liveKey, unpack(lapsed)) end
local live = rcall('ZCOUNT', liveKey, '(' .. now, '+inf')
if live >= limit then return {0, 0, live} end
rcall('SET', tokenKey, user, 'PX', ttl)
rcall('ZADD', liveKey, now + ttl, jti)
return {0, 1, live + 1}
