--[[
  A waiting or active user's poll: checks the queue token, refreshes the heartbeat and returns
  what the position needs. The whole poll path is this one call.

  KEYS[1] queue meta hash   KEYS[2] line string   KEYS[3] active zset   KEYS[4] queue token hash
  KEYS[5] write-behind stream
  ARGV[1] userId   ARGV[2] jti   ARGV[3] now (ms)   ARGV[4] grace (ms)

  Returns, when the place is there, one string of 13 space-separated fields:
           "code status seq lastAdmitted activeUntil rate admitPerSecond paused maxActive activeCount activeTtl
            etaMeanHold etaSpread": code 0, status 0 waiting | 1 active, rate x1000, paused 0|1, activeCount the
           unexpired (0 when the caller is active), activeTtl in s, etaMeanHold in s (empty before the first
           tick), etaSpread (see admitNext); numbers as integers, the last two as stored. One bulk string costs
           the client less to decode than a 13-element array (decodePollQueue in script-calls.ts).
  Otherwise {code}. Codes: 0 ok, 1 unknown or replaced token, 3 place lost (left, expired, or heartbeat lapsed)
]]
local rcall = redis.call
local metaKey, lineKey, activeKey, tokenKey, streamKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, jti, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])

--- @include "checkQueueToken"
local seq = tokenSeq

local meta = rcall('HMGET', metaKey, 'lastAdmitted', 'rate', 'admitPerSecond',
  'paused', 'maxActive', 'activeTtl', 'etaMeanHold', 'etaSpread')
local lastAdmitted = tonumber(meta[1]) or 0
local rate = tonumber(meta[2]) or 0
local admitPerSecond = tonumber(meta[3]) or 0
-- The estimate's inputs ride on this reply so that the poll stays one call.
local function place(status, activeUntil, activeCount)
  local paused = 0
  if meta[4] == '1' then paused = 1 end
  return string.format('0 %d %d %d %d %d %d %d %d %d %d %s %s', status, seq, lastAdmitted, activeUntil, rate, admitPerSecond,
    paused, tonumber(meta[5]) or 0, activeCount, tonumber(meta[6]) or 0, meta[7] or '', meta[8] or '1')
end

local activeUntil = tonumber(rcall('ZSCORE', activeKey, user))
if activeUntil and activeUntil > now then
  return place(1, activeUntil, 0)
end

if activeUntil then
  -- Time is up and no tick has freed the slot yet: free it now, with the entry it belonged to.
  rcall('ZREM', activeKey, user)
  rcall('XADD', streamKey, '*', 'e', 'expire', 'u', user, 's', seq, 't', now)
else
  -- The entry number's slot in the line (see joinQueue): user id u32, last poll ms u48.
  local bit = seq * 80
  local at = rcall('BITFIELD_RO', lineKey, 'GET', 'u32', bit, 'GET', 'u48', bit + 32)
  if at[1] == tonumber(user) then
    if now - at[2] <= grace then
      rcall('BITFIELD', lineKey, 'SET', 'u48', bit + 32, now)
      return place(0, 0, rcall('ZCOUNT', activeKey, '(' .. now, '+inf'))
    end
    rcall('BITFIELD', lineKey, 'SET', 'u32', bit, 0, 'SET', 'u48', bit + 32, 0)
    rcall('HINCRBY', metaKey, 'waiting', -1)
    rcall('XADD', streamKey, '*', 'e', 'lapse', 'u', user, 's', seq, 't', now)
  end
end
rcall('HDEL', tokenKey, user)
return {3}
