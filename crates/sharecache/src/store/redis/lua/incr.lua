-- A counter. KEYS[1] = key; ARGV[1] = delta; ARGV[2] = ttl ms for a counter this call
-- creates (0: none). Returns the new value. A key holding anything but an integer is
-- left as it is and answered with a WRONGTYPE error; an overflow with OVERFLOW.
local created = redis.call('EXISTS', KEYS[1]) == 0
local ok, v = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then
  local why = type(v) == 'table' and v.err or tostring(v)
  if string.find(why, 'overflow', 1, true) then
    return redis.error_reply('OVERFLOW the counter would overflow a 64-bit integer')
  end
  return redis.error_reply('WRONGTYPE the key holds a value that is not an integer counter')
end
if created and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
