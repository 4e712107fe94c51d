-- ARGV: prefix, id, token, percent. Records progress of the running attempt. Returns 1, or 0
-- when the lease is lost.
local id, token, percent = ARGV[2], ARGV[3], ARGV[4]
if not holds(id, token) then return 0 end
redis.call('HSET', task_key(id), 'progress', percent, 'updated_ms', now_ms())
emit(id, false)
return 1
