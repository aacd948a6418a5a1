--[[
  A pre-queued fan's poll before the draw: checks the queue token against the pre-queue and
  refreshes the heartbeat. After the draw the fan's place is an ordinary one (the queue token
  hash names it), which this script reports so that the caller takes the ordinary road.

  KEYS[1] pre-queue hash (user -> "jti|last poll ms")   KEYS[2] queue token hash (user -> jti + entry number u32)
  KEYS[3] queue meta hash
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)   ARGV[4] grace (ms)

  Returns {code, seq (when drawn)}   Codes: 17 pre-queued (heartbeat kept), 0 drawn (the token has a place in line),
  1 not known here, 3 heartbeat lapsed (the pre-queued place is gone from Redis)
]]
local rcall = redis.call
local preKey, tokenKey, metaKey = KEYS[1], KEYS[2], KEYS[3]
local user, jti, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

local placed = rcall('HGET', tokenKey, user)
if placed and string.sub(placed, 1, -5) == jti then return {0, struct.unpack('>I4', placed, #placed - 3)} end
if rcall('HGET', metaKey, 'drawn') == '1' then return {1} end
local pre = rcall('HGET', preKey, user)
if not pre then return {1} end
local sep = string.find(pre, '|', 1, true)
if string.sub(pre, 1, sep - 1) ~= jti then return {1} end
local seen = tonumber(string.sub(pre, sep + 1))
if now - seen > grace then
  rcall('HDEL', preKey, user)
  return {3}
end
rcall('HSET', preKey, user, jti .. '|' .. now)
return {17}
