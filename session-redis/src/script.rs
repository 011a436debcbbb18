//! The compare-and-set script that [`SessionStore::save`] runs in Redis.
//!
//! [`SessionStore::save`]: session_core::SessionStore::save

use std::sync::LazyLock;

/// The Lua script behind [`SessionStore::save`]: compares the stored
/// value's version header with the one the writer loaded and, when they
/// match, writes the new value with its expiry, all in one atomic step on
/// the server.
///
/// - `KEYS[1]`: the record's key.
/// - `ARGV[1]`: the new value (version header, then [`Record::to_bytes`]).
/// - `ARGV[2]`: the header of the version the writer loaded: 16 lowercase
///   hex digits and `:` (`0000000000000003:`).
/// - `ARGV[3]`: the new record's deadline in Unix milliseconds, or empty
///   when it never expires (the key then gets no TTL).
///
/// It answers `1` when it wrote, `0` when there is no record (deleted or
/// expired: it writes nothing, so a save never resurrects a session), and
/// the stored value when its first 17 bytes differ from `ARGV[2]`: a
/// conflict, or a value without a valid header, which the store reports as
/// corrupt instead of overwriting it.
///
/// It also answers `1`, writing nothing, when the stored value is exactly
/// `ARGV[1]`: this very save, already applied by an earlier copy of the
/// command (the cluster client re-sends a command whose connection
/// dropped). Every save's value holds a random token of its own, so a
/// second writer that computed the same record still meets a conflict.
///
/// The script never decodes the JSON: it compares the header as a string,
/// so every `u64` version compares exactly, and a call costs little more
/// than the `GET` and `SET` it runs.
///
/// [`SessionStore::save`]: session_core::SessionStore::save
/// [`Record::to_bytes`]: session_core::Record::to_bytes
pub const SAVE_SCRIPT: &str = r"-- session-redis: compare-and-set save
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
if string.sub(current, 1, 17) ~= ARGV[2] then
  if current == ARGV[1] then
    return 1
  end
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
