-- ARGV: prefix, id, token, error, retry_delay_ms, retention_ms, permanent (0/1).
-- Fails the running attempt: the task waits `retry_delay_ms` for its next attempt, or, on its
-- last attempt (or when `permanent`), fails for good into the dead set.
-- Returns 1 (will retry), 2 (failed for good), 3 (cancelled: a cancellation was pending), or 0
-- when the lease is lost.
local id, token, err = ARGV[2], ARGV[3], ARGV[4]
local delay, retention_ms, permanent = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7] == '1'
if not holds(id, token) then return 0 end
local key = task_key(id)
local h = redis.call('HMGET', key, 'attempt', 'max_attempts', 'priority', 'cancel')
local now = now_ms()
if h[4] == '1' then
  finish(id, 'CANCELLED', { 'error', 'cancelled: ' .. err }, retention_ms, now)
  return 3
end
if permanent or tonumber(h[1]) >= tonumber(h[2]) then
  finish(id, 'FAILED', { 'error', err }, retention_ms, now)
  return 2
end
redis.call('HSET', key, 'state', 'QUEUED', 'token', '', 'error', err, 'progress', 0,
  'updated_ms', now)
redis.call('ZREM', K.leases, id)
if delay > 0 then
  redis.call('ZADD', K.delayed, now + delay, id)
else
  enqueue(id, h[3])
end
if delay > 0 then emit(id, false, delay) else emit(id, true) end
return 1
