//! The compare-and-set script that [`SessionStore::save`] runs in Redis.
//!
//! [`SessionStore::save`]: session_core::SessionStore::save

use std::sync::LazyLock;

/// The Lua script behind [`SessionStore::save`]: compares the stored
/// record's version with the one the writer loaded and, when they match,
/// writes the new record with its expiry, all in one atomic step on the
/// server.
///
/// - `KEYS[1]`: the record's key.
/// - `ARGV[1]`: the new record ([`Record::to_bytes`]).
/// - `ARGV[2]`: the version the writer loaded (decimal).
/// - `ARGV[3]`: the new record's deadline in Unix milliseconds, or empty
///   when it never expires (the key then gets no TTL).
///
/// It answers `1` when it wrote, `0` when there is no record (deleted or
/// expired: it writes nothing, so a save never resurrects a session), and
/// the stored record's bytes when the versions differ. A stored value that
/// is not a record of format version 1 is answered like a conflict, so the
/// store reports it as corrupt instead of overwriting it.
///
/// Versions are compared as Lua numbers (doubles): exact up to 2^53 saves
/// of one session.
///
/// [`SessionStore::save`]: session_core::SessionStore::save
/// [`Record::to_bytes`]: session_core::Record::to_bytes
pub const SAVE_SCRIPT: &str = r"-- session-redis: compare-and-set save
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local ok, record = pcall(cjson.decode, current)
if not ok or type(record) ~= 'table' or record.v ~= 1
   or type(record.n) ~= 'number' or record.n ~= tonumber(ARGV[2]) then
  return current
end
if ARGV[3] == '' then
  redis.call('SET', KEYS[1], ARGV[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
end
return 1
";

/// The script, with its SHA-1 computed once.
pub(crate) static SAVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SAVE_SCRIPT));
