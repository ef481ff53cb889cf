-- Presence list: members whose expiry is in the future, with the ms each has left, as
-- a flat {member, ms, member, ms, ...} list, soonest first. Expired members are never
-- returned, whether or not they were removed yet: no sweeper, no race with one.
-- KEYS[1] = set.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local r = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE', 'WITHSCORES')
local out = {}
for i = 1, #r, 2 do
  out[#out + 1] = r[i]
  out[#out + 1] = tostring(tonumber(r[i + 1]) - now)
end
return out
