-- ARGV: prefix. Counts the tasks in each place, in one step: pending by priority (the bands
-- of the pending set's score: HIGH in (0, 2^40], MEDIUM in (2^40, 2^41], LOW above), then
-- delayed, leased and dead. Returns {low, medium, high, delayed, leased, dead}. Reads only.
local band = 1099511627776
local tasks = K.tasks
return {
  redis.call('ZCOUNT', tasks, '(' .. string.format('%.0f', 2 * band), '+inf'),
  redis.call('ZCOUNT', tasks, '(' .. string.format('%.0f', band), string.format('%.0f', 2 * band)),
  redis.call('ZCOUNT', tasks, '-inf', string.format('%.0f', band)),
  redis.call('ZCARD', K.delayed),
  redis.call('ZCARD', K.leases),
  redis.call('ZCARD', K.dead),
}
