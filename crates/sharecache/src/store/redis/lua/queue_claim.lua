-- Queue claim: reclaim or dead-letter idle pending messages, then read new ones.
-- KEYS: stream, dead-letter stream. ARGV: consumer, count, idle ms, max deliveries.
-- Returns {{id, payload, deliveries}, ...}.
local key, dlq = KEYS[1], KEYS[2]
local group, consumer = 'sharecache', ARGV[1]
local count, idle, maxd = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', key) == 0 then return {} end
pcall(redis.call, 'XGROUP', 'CREATE', key, group, '0')
local out = {}
local pend = redis.call('XPENDING', key, group, 'IDLE', idle, '-', '+', count)
for _, p in ipairs(pend) do
  local id, deliveries = p[1], tonumber(p[4])
  local m = redis.call('XRANGE', key, id, id)
  if not m[1] then
    redis.call('XACK', key, group, id)
  elseif deliveries >= maxd then
    redis.call('XADD', dlq, '*', 'data', m[1][2][2], 'id', id, 'deliveries', tostring(deliveries))
    redis.call('XACK', key, group, id)
    redis.call('XDEL', key, id)
  else
    redis.call('XCLAIM', key, group, consumer, idle, id)
    out[#out + 1] = {id, m[1][2][2], deliveries + 1}
  end
end
local left = count - #out
if left > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', left, 'STREAMS', key, '>')
  if r then
    for _, m in ipairs(r[1][2]) do out[#out + 1] = {m[1], m[2][2], 1} end
  end
end
return out
