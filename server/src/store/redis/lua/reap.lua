-- ARGV: prefix, limit, retention_ms, gap_ms, settle_ms. Takes back the tasks whose lease ran
-- out (their worker died or hung): each goes back to the pending set, or fails for good after
-- its last attempt, or ends CANCELLED if a cancellation was pending. Returns the number of
-- tasks taken back.
-- Leases run on Redis's clock, which runs on while Redis is stopped or frozen; so nothing is
-- reaped until Redis has been answering for `settle_ms` (a renew interval and a command
-- timeout): every live worker has renewed by then, and only leases of dead workers are left.
local limit, retention_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local gap_ms, settle_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
touch(now, gap_ms)
if now - tonumber(redis.call('GET', K.resumed) or '0') < settle_ms then return 0 end
local expired = redis.call('ZRANGEBYSCORE', K.leases, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local key = task_key(id)
  local h = redis.call('HMGET', key, 'attempt', 'max_attempts', 'priority', 'cancel', 'error')
  redis.call('ZREM', K.leases, id)
  if not h[1] then
    -- The task is gone; only its lease was left.
  elseif h[4] == '1' then
    finish(id, 'CANCELLED', { 'error', h[5] }, retention_ms, now)
  elseif tonumber(h[1]) >= tonumber(h[2]) then
    finish(id, 'FAILED', { 'error', 'lease expired on the last attempt (worker lost)' },
      retention_ms, now)
  else
    redis.call('HSET', key, 'state', 'QUEUED', 'token', '', 'progress', 0,
      'error', 'lease expired (worker lost)', 'updated_ms', now)
    enqueue(id, h[3])
    emit(id, true)
  end
end
return #expired
