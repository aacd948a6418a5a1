--[[
  Puts a user in a concert's waiting line, or hands back the place the user already has while
  it is live (active, or waiting within the heartbeat grace); a place that is no longer live is
  ended first, so the user takes a new one at the back.

  KEYS[1] queue meta hash      KEYS[2] line string (per entry number: user id and last poll ms)
  KEYS[3] active zset (user -> active-until ms)   KEYS[4] queue token hash (user -> jti + entry number u32)
  KEYS[5] write-behind stream
  ARGV[1] userId   ARGV[2] jti of the new queue token   ARGV[3] now (ms)   ARGV[4] grace (ms)
  ARGV[5] the token's issue time (ms, the join claim's)   ARGV[6] its expiry (ms)
  ARGV[7] the join claim's source token (the token the join was made with)
  ARGV[8] '1' when the join replaces its source token ('0' when the source stays: a move from
          another concert's line ends that place on its own)
  The stream entry that gives the place to the new token carries the token's record for SQL
  (write-behind): 'join' for a new place, 'token' for a place kept under a new token; fields
  q token id, i issued, y expires, c claim source, v source replaced (0|1), r the queue token
  the new one replaces ('' if none). Empty ARGV[5] (a caller that records the token itself)
  writes no record.

  Returns {code, seq, status (0 waiting | 1 active), lastAdmitted, activeUntil, replacedJti,
           rate (admissions/s x1000), admitPerSecond, fresh (1 when a new place was taken),
           paused (0|1), maxActive, activeCount (unexpired), activeTtl (s),
           etaMeanHold (s, '' before the first tick), etaSpread (see admitNext; strings),
           seqCeiling (the highest entry number this queue may give out)}
  Codes: 0 ok, 4 queue closed (paused), 11 queue not loaded, 14 being reloaded (retry),
         16 a scheduled sale whose draw is not in the line yet (retry),
         18 {18, lastSeq}: the next entry number is above the ceiling SQL reserved (seqCeiling;
            raiseSeqCeiling after SQL reserved more, then retry)
]]
local rcall = redis.call
local metaKey, lineKey, activeKey, tokenKey, streamKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local user, jti, now, grace = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local issuedAt, expiresAt, src, revokesSrc = ARGV[5] or '', ARGV[6] or '', ARGV[7] or '', ARGV[8] or '0'
-- The line's slot of entry number s: bits s*80 .. s*80+79 (user id u32, last poll ms u48; 0 = empty).
local function slot(s) return s * 80 end

local meta = rcall('HMGET', metaKey, 'paused', 'lastAdmitted', 'rate', 'admitPerSecond', 'loadingUntil',
  'maxActive', 'activeTtl', 'etaMeanHold', 'etaSpread', 'saleAt', 'drawn', 'lastSeq', 'seqCeiling')
if not meta[4] then return {11} end
-- A scheduled sale opens with its draw: nobody takes a place before every drawn fan has one.
if (meta[10] or '') ~= '' and meta[11] ~= '1' then return {16} end
-- The rebuild is reloading this concert from SQL: a place taken now could be overwritten.
if now < (tonumber(meta[5]) or 0) then return {14} end
local lastAdmitted = tonumber(meta[2]) or 0
local rate = tonumber(meta[3]) or 0
local admitPerSecond = tonumber(meta[4])
local seqCeiling = tonumber(meta[13]) or 0
-- What the wait estimate needs, appended to every ok reply (the join answer carries one).
local function reply(seq, status, activeUntil, replaced, fresh)
  local paused = 0
  if meta[1] == '1' then paused = 1 end
  return {0, seq, status, lastAdmitted, activeUntil, replaced, rate, admitPerSecond, fresh,
    paused, tonumber(meta[6]) or 0, rcall('ZCOUNT', activeKey, '(' .. now, '+inf'), tonumber(meta[7]) or 0,
    meta[8] or '', meta[9] or '1', seqCeiling}
end

-- A token record is the jti and the entry number as 4 bytes (queueTokenRecord in codecs.ts).
local function record(seq) return jti .. struct.pack('>I4', seq) end

-- The stream entry giving entry number seq to the new token, with the token's record (see above).
local function announce(event, seq, replaced)
  if issuedAt == '' then
    rcall('XADD', streamKey, '*', 'e', event, 'u', user, 's', seq, 't', now)
  else
    rcall('XADD', streamKey, '*', 'e', event, 'u', user, 's', seq, 't', now,
      'q', jti, 'i', issuedAt, 'y', expiresAt, 'c', src, 'v', revokesSrc, 'r', replaced)
  end
end

local existing = rcall('HGET', tokenKey, user)
if existing then
  local oldJti = string.sub(existing, 1, -5)
  local seq = struct.unpack('>I4', existing, #existing - 3)
  local activeUntil = tonumber(rcall('ZSCORE', activeKey, user))
  if activeUntil and activeUntil > now then
    rcall('HSET', tokenKey, user, record(seq))
    if oldJti ~= jti and issuedAt ~= '' then announce('token', seq, oldJti) end
    return reply(seq, 1, activeUntil, oldJti, 0)
  end
  if activeUntil then
    -- The active time is up but no tick has freed the slot yet: free it here, or the next tick
    -- would take the new place's token record for the old slot's and delete it.
    rcall('ZREM', activeKey, user)
    rcall('XADD', streamKey, '*', 'e', 'expire', 'u', user, 's', seq, 't', now)
  else
    local at = rcall('BITFIELD_RO', lineKey, 'GET', 'u32', slot(seq), 'GET', 'u48', slot(seq) + 32)
    if at[1] == tonumber(user) then
      if now - at[2] <= grace then
        rcall('BITFIELD', lineKey, 'SET', 'u48', slot(seq) + 32, now)
        rcall('HSET', tokenKey, user, record(seq))
        if oldJti ~= jti and issuedAt ~= '' then announce('token', seq, oldJti) end
        return reply(seq, 0, 0, oldJti, 0)
      end
      -- The heartbeat lapsed: that place is lost (as a poll would have found); take a new one.
      rcall('BITFIELD', lineKey, 'SET', 'u32', slot(seq), 0, 'SET', 'u48', slot(seq) + 32, 0)
      rcall('HINCRBY', metaKey, 'waiting', -1)
      rcall('XADD', streamKey, '*', 'e', 'lapse', 'u', user, 's', seq, 't', now)
    end
  end
end

if meta[1] == '1' then return {4} end
-- Only numbers SQL has reserved: SQL mode and the rebuild number above them (reserveEntryNumbers).
local lastSeq = tonumber(meta[12]) or 0
if lastSeq >= seqCeiling then return {18, lastSeq} end

local seq = rcall('HINCRBY', metaKey, 'lastSeq', 1)
rcall('BITFIELD', lineKey, 'SET', 'u32', slot(seq), user, 'SET', 'u48', slot(seq) + 32, now)
rcall('HINCRBY', metaKey, 'waiting', 1)
rcall('HSET', tokenKey, user, record(seq))
local replaced = ''
if existing then replaced = string.sub(existing, 1, -5) end
announce('join', seq, replaced)
-- Keys created after the concert was loaded take the meta hash's lifetime (the concert's end
-- plus a day), as the loaded ones did; otherwise they would outlive the concert for ever.
local untilMs = rcall('PEXPIRETIME', metaKey)
if untilMs > 0 then
  for _, key in ipairs({lineKey, tokenKey, streamKey}) do
    if rcall('PTTL', key) == -1 then rcall('PEXPIREAT', key, untilMs) end
  end
end
return reply(seq, 0, 0, replaced, 1)
