-- Presence leave. KEYS[1] = set; ARGV[1] = member.
-- Returns 1 if the member was there and alive, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if exp and tonumber(exp) > now then return 1 else return 0 end
