-- ARGV: prefix, server, then per stream: id, after. For each, reads the task's events after
-- sequence number `after` (event n is at index n - 1 of its history) and, in the same step,
-- adds `server` to the servers its later events are published to (its `watch` field, see
-- `publish`): every event is either in what this returns or reaches that server's channel.
-- A task watched by more than MAX_WATCHERS servers is published to every server instead.
-- Streams that open together (the store batches them) share one call. Returns, per stream,
-- the events.
local MAX_WATCHERS = 32
local server = ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local id, after = ARGV[i], ARGV[i + 1]
  local key = task_key(id)
  local h = redis.call('HMGET', key, 'state', 'watch')
  local state, watch = h[1], h[2] or ' '
  local live = state == 'QUEUED' or state == 'IN_PROGRESS'
  if live and watch ~= '*' and not string.find(watch, ' ' .. server .. ' ', 1, true) then
    local _, count = string.gsub(watch, '%S+', '')
    if count >= MAX_WATCHERS then watch = '*' else watch = watch .. server .. ' ' end
    redis.call('HSET', key, 'watch', watch)
  end
  out[#out + 1] = redis.call('LRANGE', P .. 'task_events:' .. id, after, -1)
end
return out
