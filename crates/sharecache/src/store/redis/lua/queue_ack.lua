-- Queue ack: XACK then XDEL. KEYS: stream. ARGV: ids. Returns how many were pending.
local ok, n = pcall(redis.call, 'XACK', KEYS[1], 'sharecache', unpack(ARGV))
redis.call('XDEL', KEYS[1], unpack(ARGV))
if ok then return n else return 0 end
